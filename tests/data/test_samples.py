import json

import pandas as pd
import pytest

from harness.core.config import ConfigError
from harness.data.samples import load_samples
from harness.data.tasks import load_task_file
from harness.scoring.prompts import render

TASK = """
task: toy
include: {base}
dataset: {{files: [{file}]}}
fields: {{id: qid, video: vid, question: q, options: opts, answer: ans, answer_format: {fmt},
         strip_option_prefix: {strip}, duration: dur}}
video_path: "{{root}}/videos/{{vid}}.mp4"
metric: {{breakdown: [kind]}}
"""


def make_task(tmp_path, rows, *, fmt="letter", strip=False, file="ann.parquet"):
    if file.endswith(".parquet"):
        pd.DataFrame(rows).to_parquet(tmp_path / file)
    else:
        (tmp_path / file).write_text(json.dumps(rows))
    from harness.core.paths import tasks_dir

    yaml = TASK.format(base=tasks_dir() / "_base_mcq.yaml", file=file, fmt=fmt, strip=str(strip).lower())
    (tmp_path / "toy.yaml").write_text(yaml)
    return load_task_file(tmp_path / "toy.yaml")


ROWS = [
    {"qid": "q1", "vid": "v1", "q": "What?", "opts": ["A. cat", "B. dog", "C. cow", "D. hen"], "ans": "B",
     "dur": 12.5, "kind": "x"},
    {"qid": "q2", "vid": "v2", "q": "Which?", "opts": ["A. red", "B. blue", "C. green", "D. gray"], "ans": "D",
     "dur": 3.0, "kind": "y"},
]


def test_parquet_rows_become_samples(tmp_path):
    task = make_task(tmp_path, ROWS, strip=True)
    samples = load_samples(task, tmp_path)
    assert [s.id for s in samples] == ["q1", "q2"]
    first = samples[0]
    assert first.options == ("cat", "dog", "cow", "hen") and first.answer == 1
    assert first.video == str(tmp_path.resolve() / "videos" / "v1.mp4")
    assert first.duration_s == 12.5 and first.breakdown == {"kind": "x"} and first.video_id == "v1"
    assert load_samples(task, tmp_path, limit=1)[0].id == "q1"


def test_json_rows_with_index_answers(tmp_path):
    rows = [dict(r, ans=str(i)) for i, r in enumerate(ROWS)]
    task = make_task(tmp_path, rows, fmt="index", strip=True, file="ann.json")
    assert [s.answer for s in load_samples(task, tmp_path)] == [0, 1]


def test_bad_gold_names_the_row(tmp_path):
    task = make_task(tmp_path, [dict(ROWS[0], ans="Z")])
    with pytest.raises(ConfigError, match=r"row 0: answer 'Z' \(letter\) does not name one of 4 options"):
        load_samples(task, tmp_path)


def test_video_path_cannot_escape_the_root(tmp_path):
    task = make_task(tmp_path, [dict(ROWS[0], vid="../../etc/passwd")])
    with pytest.raises(ConfigError, match="escapes the data root"):
        load_samples(task, tmp_path)


def test_missing_annotations_say_what_to_do(tmp_path):
    task = make_task(tmp_path, ROWS)
    with pytest.raises(ConfigError, match="pass --data-root"):
        load_samples(task, tmp_path / "elsewhere")


def test_prompt_profiles_render(tmp_path):
    task = make_task(tmp_path, ROWS, strip=True)
    sample = load_samples(task, tmp_path)[0]
    lmms = render(task.prompt("lmms-eval"), sample, "lmms-eval")
    assert lmms.user == "What?\nA. cat\nB. dog\nC. cow\nD. hen\nAnswer with the option's letter from the given choices directly."
    vilamp = render(task.prompt("vilamp"), sample, "vilamp")
    assert vilamp.user == ("What?. Please choose the right answer from the following options: "
                           "['A. cat', 'B. dog', 'C. cow', 'D. hen'].")
    with pytest.raises(ConfigError, match="unknown prompt profile 'nope'"):
        task.prompt("nope")
