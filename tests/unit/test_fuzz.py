"""A bounded coverage-guided fuzzing run (atheris) of the payload decoder, in the test suite."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SEEDS = [
    b'{"seq": 1, "ts": 1795000000, "metric": "press", "value": 1}',
    b'{"boot": 2, "readings": [{"seq": 1, "ts": "2026-11-23T12:00:00Z", "value": 21.5}]}',
    b'{"seq": 3, "ts": 1795000000.5, "value": true}',
]


def test_decoder_survives_a_fuzzing_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        # The first byte picks the topic in the target; prefix each seed with topic choices.
        for t in range(4):
            (corpus / f"seed-{i}-{t}").write_bytes(bytes([t]) + seed)
    target = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_decoder.py"
    runs = 30_000
    proc = subprocess.run(
        [sys.executable, str(target), f"-runs={runs}", "-max_len=2048", "-seed=1", str(corpus)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    done = re.search(r"Done (\d+) runs", out)
    assert done is not None, out[-2000:]
    assert int(done.group(1)) >= runs
    # The decoder was instrumented, and the fuzzer found new paths in it as it ran.
    assert "Instrumenting devices.payload" in out
    cov = [int(c) for c in re.findall(r"cov: (\d+)", out)]
    assert cov, out[-2000:]
    assert cov[-1] > cov[0], out[-2000:]
