"""Runs INSIDE .venv-lmms (lmms-eval 0.7.3): lmms-eval's own answer extraction and aggregation for our four
benchmarks, on cases read as JSON from stdin; prints JSON to stdout. Used by harness/interop/extractors.py and tests/interop/test_lmms_parity.py.

Input: {"seeds": k, "cases": [{"task", "response", "options": [texts], "answer": gold index}],
        "aggregate": {"videomme": [per-doc dicts], "mlvu": [...], "longvideobench": [...], "egoschema": [...]}}
Output: {"cases": [{"preds": sorted distinct letters over k seeds ("" = none), "score": 0/1 at seed 0}],
         "aggregate": {task: lmms-eval's aggregate value}}
"""

import json
import random
import sys

import lmms_eval.tasks.egoschema.utils as egoschema
import lmms_eval.tasks.longvideobench.utils as lvb
import lmms_eval.tasks.mlvu.utils as mlvu
import lmms_eval.tasks.videomme.utils as videomme

CHOICES = "ABCDE"  # the option letters of lmms-eval's parsers (up to five options)


def run(case):
    task, response, options, gold = case["task"], case["response"], case["options"], case["answer"]
    letter = CHOICES[gold]
    if task == "videomme":
        doc = {"question_id": "001-1", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
               "task_type": "Counting Problem", "answer": letter, "videoID": "v",
               "options": [f"{CHOICES[i]}. {t}" for i, t in enumerate(options)]}
        out = videomme.videomme_process_results(doc, [response])["videomme_perception_score"]
        return out["pred_answer"], int(out["score"])
    if task == "mlvu":
        doc = {"question": "q", "task_type": "needle", "answer": letter}
        out = mlvu.mlvu_process_results(doc, [response])["mlvu_percetion_score"]
        return out["pred_answer"], int(out["pred_answer"] == out["answer"])
    if task == "longvideobench":
        doc = {"id": "x", "duration_group": 600, "question_category": "T3O", "correct_choice": gold,
               **{f"option{i}": options[i] if i < len(options) else "N/A" for i in range(5)}}
        out = lvb.longvideobench_process_results(doc, [response])["lvb_acc"]
        return out["parsed_pred"], int(out["parsed_pred"] == out["answer"])
    if task == "egoschema":
        doc = {"video_idx": "v", "answer": str(gold), "option": [f"{CHOICES[i]}. {t}" for i, t in enumerate(options)]}
        out = egoschema.egoschema_process_results_generation(doc, [response])["score"]
        pred = out["pred"]
        return ("" if pred < 0 else CHOICES[pred]), int(str(out["pred"]) == str(out["ground_truth"]))
    raise ValueError(f"unknown task {task!r}")


def main():
    request = json.load(sys.stdin)
    cases = []
    for case in request["cases"]:
        preds, score = set(), None
        for seed in range(request["seeds"]):
            random.seed(seed)  # lmms-eval seeds python's random from --seed (default 0)
            pred, s = run(case)
            preds.add(pred)
            score = s if score is None else score
        cases.append({"preds": sorted(preds), "score": score})
    agg = request.get("aggregate", {})
    aggregate = {}
    if "videomme" in agg:
        aggregate["videomme"] = videomme.videomme_aggregate_results(agg["videomme"])
    for key in ("mlvu", "mlvu_partial"):
        if key in agg:
            aggregate[key] = mlvu.mlvu_aggregate_results_dev(agg[key])
    if "longvideobench" in agg:
        aggregate["longvideobench"] = lvb.longvideobench_aggregate_results(agg["longvideobench"])
    if "egoschema" in agg:
        aggregate["egoschema"] = egoschema.egoschema_aggregate_score(agg["egoschema"], None)
    json.dump({"cases": cases, "aggregate": aggregate}, sys.stdout)


if __name__ == "__main__":
    main()
