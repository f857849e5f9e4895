"""Runs INSIDE .venv-lmms: resolves our model through lmms-eval's own registry (the `lmms_eval.models` entry
point), builds it from a --model_args string and answers one generate_until request on a real video file."""

import json
import sys

from lmms_eval.api.instance import Instance
from lmms_eval.models import get_model, list_available_models


def main():
    video, spec = sys.argv[1], sys.argv[2]
    cls = get_model("vilamp_harness")
    model = cls.create_from_arg_string(f"spec={spec}")
    docs = {"needle": {"test": [{"video": video}]}}
    model.task_dict = docs
    ctx = "What is in the video?\nA. a cat\nB. a dog\nAnswer with the option's letter from the given choices directly."
    request = Instance(request_type="generate_until", idx=0,
                       arguments=(ctx, {"max_new_tokens": 3}, lambda doc: [doc["video"]], 0, "needle", "test"),
                       metadata={"task": "needle", "doc_id": 0, "repeats": 1})
    answers = model.generate_until([request])
    try:
        cls.create_from_arg_string(f"spec={spec},frames=8")
        typo = "accepted"
    except Exception as exc:  # noqa: BLE001 - report what lmms-eval users would see
        typo = str(exc)
    json.dump({"listed": "vilamp_harness" in list_available_models(), "class": cls.__name__,
               "answers": answers, "typo": typo}, sys.stdout)


if __name__ == "__main__":
    main()
