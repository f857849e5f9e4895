"""Text side of the transformers models: the offline BPE tokenizer of the tiny checkpoints, ChatML as a chat
template, and rendering a prompt through a model's template (media part before the user text)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from harness.core.records import Prompt

if TYPE_CHECKING:  # transformers loads on first use: the spec check needs only the class attributes
    from transformers import PreTrainedTokenizerFast

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"  # Qwen2's ChatML tokens
DEFAULT_SYSTEM = "You are a helpful assistant."  # Qwen2's default system turn
IMAGE, VIDEO = "<image>", "<video>"  # LLaVA's media placeholders
TINY_VOCAB_SIZE = 1024  # BPE target; the trained vocabulary may come out smaller on this corpus

# Enough English and prompt phrasing for BPE to learn merges the harness' prompts actually use.
_CORPUS = """\
You are a helpful assistant.
Select the best answer to the following multiple-choice question based on the video.
Respond with only the letter (A, B, C, D, or E) of the correct option.
Answer with the option's letter from the given choices directly.
Carefully watch the video and pay attention to the cause and sequence of events, the detail and movement of
objects, and the action and pose of persons. Based on your observations, select the best option that accurately
addresses the question.
Question: What is the man doing at the beginning of the video?
Options:
A. He is cooking dinner in the kitchen.
B. He is riding a bicycle along the river.
C. He is reading a book in the library.
D. He is playing the piano on a stage.
E. He is painting a wall in the garden.
Best Option: (
The best answer is
Answer: A
Answer: B
Answer: C
Answer: D
Answer: E
(A) (B) (C) (D) (E)
How many times does the woman open the door? How many people appear in the video? What color is the car?
Which object appears first? Where does the scene take place? Why does the dog run across the street?
What happens after the person picks up the cup? In what order do the following events occur?
The video shows a long sequence of scenes: a city street at night, a crowded market, a quiet forest, a beach
at sunset, a classroom with students, a football match, a cooking show and a documentary about animals.
A needle is inserted somewhere in the long video; find the frame and describe what it shows.
Count the number of red balls. Summarize the plot of the movie. Describe the main character.
0 1 2 3 4 5 6 7 8 9 10 11 12 16 20 24 30 32 48 60 64 100 128 256 512 1000 2024
first second third fourth fifth last before after during while then finally
the a an and or of to in on at by for with from into over under between through
is are was were be been has have had do does did can could will would should may might
he she it they we you I his her its their our your this that these those there here
yes no true false correct wrong left right up down start end begin beginning middle time frame frames
"""


def chatml_template(image: str, video: str, default_system: str) -> str:
    """Qwen2's ChatML as a Jinja chat template: a default system turn when none is given; typed content renders
    each visual item as `image` / `video` (the model's placeholder text) followed by the text parts."""
    return (
        "{% for message in messages %}"
        "{% if loop.first and message['role'] != 'system' %}"
        "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}"
        "{% endif %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' }}"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        f"{{% if part['type'] == 'image' %}}{{{{ '{image}' }}}}"
        f"{{% elif part['type'] == 'video' %}}{{{{ '{video}' }}}}"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
        "{% endfor %}{% endif %}"
        "{{ '<|im_end|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


# LLaVA-OneVision's layout: each visual placeholder on its own line before the text ("<video>\n{question}").
LLAVA_CHAT_TEMPLATE = chatml_template(image=IMAGE + "\\n", video=VIDEO + "\\n", default_system=DEFAULT_SYSTEM)


def tiny_tokenizer(
    chat_template: str = LLAVA_CHAT_TEMPLATE, image: str = IMAGE, video: str = VIDEO, markers: tuple[str, ...] = ()
) -> PreTrainedTokenizerFast:
    """The tokenizer of every tiny checkpoint: a byte-level BPE (Qwen2's scheme) trained offline on the in-code
    corpus, with special tokens ChatML's three, then `markers`, then the `image` and `video` placeholders
    (LLaVA-OV's by default; Qwen2.5-VL adds its vision_start/end markers)."""
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        special_tokens=[ENDOFTEXT, IM_START, IM_END, *markers, image, video],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS.splitlines() + [" ".join("ABCDE"), " ".join("0123456789")], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=IM_END,  # chat models end their turn with <|im_end|>, as Qwen2-Instruct does
        pad_token=ENDOFTEXT,
        extra_special_tokens={"image_token": image, "video_token": video},
        chat_template=chat_template,
        model_max_length=32768,
    )


def chat_text(tokenizer: Any, prompt: Prompt, media: dict[str, Any]) -> str:
    """The chat as the model's template renders it (media part before the user text), assistant prefix included."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": [media, {"type": "text", "text": prompt.user}]}]
    if prompt.system:
        messages.insert(0, {"role": "system", "content": prompt.system})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prompt.assistant_prefix


def chat_ids(tokenizer: Any, prompt: Prompt, media: dict[str, Any], token_id: int, token: str) -> tuple[list[int], int]:
    """Token ids of the chat (`chat_text`), and where its single placeholder sits."""
    ids = tokenizer(chat_text(tokenizer, prompt, media), add_special_tokens=False)["input_ids"]
    if (found := ids.count(token_id)) != 1:
        raise ValueError(f"the prompt must hold exactly one {token} placeholder, found {found}")
    return ids, ids.index(token_id)


def choice_token_ids(tokenizer: Any, choices: tuple[str, ...]) -> list[int]:
    """The first token of each choice string; they must differ, or the choice would be ambiguous."""
    ids = [tokenizer(choice, add_special_tokens=False)["input_ids"][0] for choice in choices]
    if len(set(ids)) != len(ids):
        raise ValueError(f"choices {choices} do not start with distinct tokens ({ids})")
    return ids


def stop_ids(model: Any) -> frozenset[int]:
    """The token ids that end generation: the model's generation_config eos id(s)."""
    eos = model.generation_config.eos_token_id
    return frozenset(eos if isinstance(eos, list) else [eos])
