"""`llmrl score`: score JSONL requests ({"context", "candidates"}) line by line, in order."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

from policies.tokenization import ScoringInputError, validate_request


@dataclass(frozen=True)
class ScoreLine:
    """One input line: parsed request, or the reason it cannot be scored."""

    number: int
    context: str | None = None
    candidates: list[str] | None = None
    error: str | None = None


def parse_lines(lines: Iterable[str]) -> Iterator[ScoreLine]:
    """Parse and validate each non-blank line; a bad line yields its error, never stops the rest."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as e:
            yield ScoreLine(number, error=f"line {number}: not valid JSON ({e.msg} at column {e.colno})")
            continue
        if not isinstance(record, dict) or set(record) - {"context", "candidates"} or "context" not in record \
                or "candidates" not in record:
            yield ScoreLine(number, error=f'line {number}: expected an object with exactly the keys "context" '
                                          f'(a string) and "candidates" (a list of strings), got {raw.strip()[:80]}')
            continue
        try:
            validate_request([record["context"]], [record["candidates"]])
        except ScoringInputError as e:
            yield ScoreLine(number, error=f"line {number}: {str(e).replace('context 0', 'the context')}")
            continue
        yield ScoreLine(number, context=record["context"], candidates=list(record["candidates"]))


def score_lines(scorer, lines: Iterable[str], out: IO[str], *, mean: bool = False, batch_size: int = 64) -> int:
    """Write one JSON line per input line, in order; return how many lines were bad.

    Good lines: {"line", "logprobs", "version"}; bad lines: {"line", "error"} (also on stderr).
    Lines are scored in batches of `batch_size`; a batch the model rejects (an over-long
    prompt, say) is retried line by line so only the offending lines report errors.
    """
    bad = 0
    batch: list[ScoreLine] = []

    def flush() -> None:
        nonlocal bad
        for line, record in zip(batch, _score_batch(scorer, batch, mean)):
            if "error" in record:
                bad += 1
                print(record["error"], file=sys.stderr)
            out.write(json.dumps({"line": line.number, **record}) + "\n")
        out.flush()
        batch.clear()

    for line in parse_lines(lines):
        batch.append(line)
        if len(batch) >= batch_size:
            flush()
    flush()
    return bad


def _score_batch(scorer, batch: list[ScoreLine], mean: bool) -> list[dict]:
    good = [line for line in batch if line.error is None]
    results: dict[int, dict] = {line.number: {"error": line.error} for line in batch if line.error is not None}
    if good:
        try:
            answer = scorer.score([g.context for g in good], [g.candidates for g in good], mean=mean)
            for line, logprobs, version in zip(good, answer.logprobs, answer.versions):
                results[line.number] = {"logprobs": logprobs, "version": version}
        except ScoringInputError:
            for line in good:
                results[line.number] = _single(scorer, line, mean)
    return [results[line.number] for line in batch]


def _single(scorer, line: ScoreLine, mean: bool) -> dict:
    try:
        answer = scorer.score([line.context], [line.candidates], mean=mean)
        return {"logprobs": answer.logprobs[0], "version": answer.versions[0]}
    except ScoringInputError as e:
        return {"error": f"line {line.number}: {str(e).replace('context 0', 'the context')}"}
