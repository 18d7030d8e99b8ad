"""The long-context text suite: deterministic, split by content, answers hidden exactly where they should be."""

from __future__ import annotations

import pytest

from hybridkv.data import split_question
from hybridkv.data.longtext import TEXT_TASKS, contains_answer, generate_text_items
from hybridkv.errors import ConfigError
from hybridkv.eval.config import EvalConfig
from hybridkv.eval.tasks import get_task


@pytest.mark.parametrize("task", sorted(TEXT_TASKS))
def test_items_are_deterministic_and_hide_the_asked_key(task):
    items = generate_text_items(task, "test", 3)
    assert [i.prompt for i in items] == [i.prompt for i in generate_text_items(task, "test", 3)]
    assert len({i.prompt for i in items}) == 3
    kind, tokens = TEXT_TASKS[task]
    for item in items:
        assert item.context.count(item.answer) == 1 and item.answer not in item.question
        keys = item.meta["keys"]
        assert len(keys) == (1 if kind == "needle" else 8) and all(k in item.context for k in keys)
        assert 0.8 * tokens * 3.85 < len(item.context) < 1.2 * tokens * 3.85
        if kind == "multikey":
            assert item.meta["names"][item.meta["asked"]] in item.question
        assert split_question(item.prompt) == (item.context + "\n", item.question.lstrip("\n"))


def test_splits_never_share_an_item_and_seeds_differ():
    splits = ("train", "validation", "test")
    by_split = {s: {i.prompt for i in generate_text_items("multikey_2k", s, 8)} for s in splits}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["validation"] & by_split["test"])
    other_seed = {i.prompt for i in generate_text_items("multikey_2k", "test", 8, seed=1)}
    assert not (other_seed & by_split["test"])


def test_answers_count_when_the_key_appears_as_a_whole_number():
    assert contains_answer("The pass key is 73093.", "73093")
    assert contains_answer("73093", "73093")
    assert not contains_answer("The pass key is 730931.", "73093")
    assert not contains_answer("The pass key is 7309.", "73093")


def test_text_tasks_are_eval_tasks_but_not_part_of_the_default_suite():
    assert get_task("needle_4k").score("It is 12345.", "12345")
    assert not get_task("grid").score("It is 7.", "7")  # the visual suite keeps exact match
    config = EvalConfig(model="tiny-random-qwen3", tasks=("needle_2k",), methods=("full",), limit=1)
    assert config.tasks == ("needle_2k",)
    assert not set(TEXT_TASKS) & set(EvalConfig(methods=("full",)).tasks)
    with pytest.raises(ConfigError, match="needle_3k"):
        EvalConfig(tasks=("needle_3k",), methods=("full",))
