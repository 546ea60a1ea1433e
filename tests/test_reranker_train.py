"""`rag reranker train`: data readers, mining, vocabulary, a short real training run, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.errors import RagError
from rag.training.calibrate import Scored, fit_weight
from rag.training.data import Example, lengthen, read_examples
from rag.training.vocab import common_syllables, frequent_syllables

runner = CliRunner()

FACTS = [
    ("How much is the late fee?", "Late fees are 100 won per day per book."),
    ("When does the library close?", "The main library closes at 22 on weekdays."),
    ("Is parking free?", "Parking is free for the first two hours."),
    ("How much does printing cost?", "Printing costs 50 won per black and white page."),
    ("How many books can adults borrow?", "Adults may borrow seven books at once."),
    ("Where is the makerspace?", "The makerspace is on the third floor."),
    ("연체료는 얼마인가요?", "연체료는 하루에 100원입니다."),
    ("도서관은 언제 문을 닫나요?", "본관은 평일 밤 10시에 문을 닫습니다."),
    ("주차는 무료인가요?", "주차는 처음 두 시간 무료입니다."),
    ("어린이는 몇 권 빌릴 수 있나요?", "어린이는 한 번에 다섯 권까지 빌릴 수 있습니다."),
    ("스터디룸은 어떻게 예약하나요?", "스터디룸은 앱에서 하루 전까지 예약합니다."),
    ("희망도서는 몇 권까지 신청하나요?", "희망도서는 한 달에 세 권까지 신청할 수 있습니다."),
]


def _pairs_file(folder: Path) -> Path:
    data = folder / "pairs.jsonl"
    lines = (json.dumps({"query": q, "positives": [p]}, ensure_ascii=False) + "\n" for q, p in FACTS)
    data.write_text("".join(lines), encoding="utf-8")
    return data


def test_msmarco_reader_keeps_the_training_split_only(tmp_path):
    rows = [{"id": i, "query": f"q{i}", "positive": [f"p{i}"]} for i in (7, 8, 14, 15)]
    path = tmp_path / "msmarco_eng.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert [e.query for e in read_examples(path)] == ["q8", "q15"]  # id % 7 == 0 is evaluation


def test_jsonl_reader_and_its_errors(tmp_path):
    good = tmp_path / "pairs.jsonl"
    good.write_text('{"query": "q", "positives": ["p"], "negatives": ["n"]}\n', encoding="utf-8")
    assert read_examples(good) == [Example("q", ["p"], ["n"])]
    separator = tmp_path / "u2028.jsonl"  # json.dumps(ensure_ascii=False) leaves U+2028 unescaped
    separator.write_text(json.dumps({"query": "q", "positives": ["a\u2028b"]}, ensure_ascii=False) + "\n")
    assert read_examples(separator)[0].positives == ["a\u2028b"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n', encoding="utf-8")
    with pytest.raises(RagError, match=r"bad.jsonl:1: expected"):
        read_examples(bad)


def test_lengthen_hides_each_passage_in_filler_of_its_own_script():
    examples = [Example(q, [p], [f"{p} (other {n})" for n in range(3)]) for q, p in FACTS]
    padded = lengthen(examples, share=1.0, seed=3)
    assert [e.query for e in padded] == [e.query for e in examples]
    grew = 0
    for before, after in zip(examples, padded, strict=True):
        own = set(before.positives) | set(before.negatives)
        for original, long in zip(before.positives + before.negatives, after.positives + after.negatives):
            assert original in long  # the passage itself is intact, somewhere inside
            filler = long.replace(original, "")
            assert not any(o in filler for o in own)  # never padded with its own query's passages
            korean = bool(re.search("[가-힣]", original))
            assert not filler.strip() or bool(re.search("[가-힣]", filler)) == korean  # same script
            assert len(long) <= (850 // 2 if korean else 850)
            grew += len(long) > len(original)
    assert grew > len(examples)  # most passages got longer
    assert lengthen(examples, share=1.0, seed=3) == padded  # seeded
    assert lengthen(examples, share=0.0, seed=3) == examples
    half = lengthen(examples, share=0.5, seed=3)
    assert 0 < sum(a != b for a, b in zip(examples, half)) < len(examples)


def test_syllable_lists():
    assert frequent_syllables(["가나다 가나 가"], 2) == ["가", "나"]
    common = common_syllables()
    assert len(common) == 2350 and "뉴" in common and "똠" not in common  # 똠 is not in KS X 1001


def test_training_a_reranker_end_to_end_and_resuming(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    data = _pairs_file(tmp_path)
    out = tmp_path / "out"

    def args(steps: int) -> list[str]:
        options = {"--out": out, "--base": "sentence-transformers/all-MiniLM-L6-v2", "--val-size": 3,
                   "--negatives": 5, "--group": 4, "--max-steps": steps, "--eval-every": 2, "--syllables": 50,
                   "--max-length": 64, "--lengthen": 0.5, "--layers": 4}  # fmt: skip
        return ["reranker", "train", str(data), *(str(x) for item in options.items() for x in item)]

    result = runner.invoke(app, args(4))
    assert result.exit_code == 0, result.output
    assert "validation MRR@10" in result.output
    model_dir = out / "model"
    card = (model_dir / "README.md").read_text(encoding="utf-8")
    assert "non-commercial" in card and "rag reranker train" in card
    assert "`--lengthen 0.5`: every passage of 50% of the training queries" in card
    assert "its first 4 layers (`--layers`)" in card
    assert "blend: logit weight" in result.output and "logit_weight" in card
    assert "logit_weight" in json.loads((model_dir / "rag_reranker.json").read_text())
    state = json.loads((out / "training.json").read_text())
    assert state["step"] == 4 and [h["step"] for h in state["history"]] == [0, 2, 4]
    # --lengthen: validated on the passages as given and padded, kept on the mean of the two
    for entry in state["history"]:
        sets = entry["by_set"]
        assert set(sets) == {"given", "padded"}
        assert entry["val_mrr@10"] == pytest.approx((sets["given"]["all"] + sets["padded"]["all"]) / 2)
    assert json.loads((model_dir / "config.json").read_text())["num_hidden_layers"] == 4  # --layers 4 of 6

    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(model_dir))
    assert model.tokenizer.tokenize("연체료는") == ["연", "체", "료", "는"]  # whole syllables, no [UNK]
    assert model.predict([("연체료는 얼마인가요?", "연체료는 하루에 100원입니다.")]).shape == (1,)

    # a second run with more steps resumes from the checkpoint instead of starting over
    resumed = runner.invoke(app, args(6))
    assert resumed.exit_code == 0, resumed.output
    history = json.loads((out / "training.json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 2, 4, 6]


def test_fine_tuning_the_bundled_reranker_starts_from_its_korean(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    data = _pairs_file(tmp_path)
    options = {"--out": tmp_path / "out", "--base": "rag-e5-ko-en", "--val-size": 4, "--negatives": 5,
               "--group": 4, "--max-steps": 2, "--eval-every": 2, "--max-length": 64, "--lr": 0}  # fmt: skip
    result = runner.invoke(app, ["reranker", "train", str(data), *(str(x) for kv in options.items() for x in kv)])
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "out" / "training.json").read_text())
    assert state["history"][0]["val_mrr@10"] >= 0.5  # it ranks these pairs before any step
    assert state["config"]["syllables"] == 0  # it reads Hangul already: no syllables added
    card = (tmp_path / "out" / "model" / "README.md").read_text(encoding="utf-8")
    assert "Vocabulary as the base's" in card
    # lr 0: no validation beats the start, so the last weights are kept, and both summaries say so
    assert state["best_step"] == 0 and state["kept_step"] == 2
    assert "(step 2 of 2)" in result.output and "the weights kept are step 2's" in card


def test_a_base_that_reads_hangul_keeps_its_token_embeddings_frozen(tmp_path):
    # nothing was added to its vocabulary, so nothing there is trained (a dense 250k-row gradient
    # and AdamW sweep per step cost a quarter of the step time for updates of zero)
    from rag.training.train import TrainConfig, _embedding_groups, build_model

    cfg = TrainConfig(base="rag-e5-ko-en", out_dir=tmp_path, max_length=64)
    model, base_vocab = build_model(cfg, [])
    assert _embedding_groups(model, base_vocab, cfg) == []
    assert not model.model.get_input_embeddings().weight.requires_grad


def test_keeping_more_layers_than_the_base_has_is_a_clear_error(cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    from rag.training.train import keep_layers

    model = CrossEncoder(str(cross_encoder_dir))
    with pytest.raises(RagError, match=r"--layers 7: the base has 6 layers; keep 1 to 6"):
        keep_layers(model.model, 7)
    keep_layers(model.model, 2)
    assert len(model.model.base_model.encoder.layer) == 2 and model.model.config.num_hidden_layers == 2


def test_too_few_queries_is_a_clear_error(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"query": "q", "positives": ["p"]}\n', encoding="utf-8")
    result = runner.invoke(app, ["reranker", "train", str(data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "need more than --val-size" in result.output
    assert not Path(tmp_path / "o").exists()


def _rows(gold_at: int, logits_for_gold: float, count: int = 30) -> list[Scored]:
    """Queries whose positive the first stage ranks at `gold_at`, with a chosen logit for it."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(count):
        retrieval = np.linspace(1.0, 0.1, 10)
        logits = rng.normal(0.0, 1.0, 10)
        logits[gold_at] = logits_for_gold
        rows.append(Scored(retrieval, logits, np.arange(10) == gold_at))
    return rows


def test_blend_fit_trusts_a_reranker_that_helps_and_ignores_one_that_does_not():
    helpful = fit_weight(_rows(gold_at=3, logits_for_gold=6.0))
    assert helpful["val_mrr@10"] == 1.0 and helpful["val_mrr@10_first_stage_only"] == 0.25
    assert helpful["logit_weight"] not in (0.0, None)  # the smallest weight that reaches the best
    useless = fit_weight(_rows(gold_at=0, logits_for_gold=-6.0))
    assert useless["logit_weight"] == 0.0 and useless["val_mrr@10"] == 1.0
