"""`elmo serve`: a real server on loopback (a subprocess on a free port), a real HTTP client
(http.client), a TF-IDF task model and the test encoder. The API, the bounds, the errors, the
micro-batching and the drain on SIGTERM."""

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import REPO
from helpers import ServeProcess as Server
from helpers import cli, env

SAMPLES = REPO / "data" / "samples" / "sentiment"


@pytest.fixture(scope="module")
def models(tmp_path_factory, trained):
    d = tmp_path_factory.mktemp("serve")
    p = cli("-q", "finetune", "--task", "classify", "--model", "tfidf", "--train", SAMPLES / "train.tsv",
            "--dev", SAMPLES / "dev.tsv", "--out", d / "sentiment", cwd=d)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return d / "sentiment", trained / "enc"


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    bounds = ("--max-texts", "8", "--max-tokens", "40", "--max-body-bytes", "4000", "--max-embed-values", "500")
    s = Server(*models, *bounds, cwd=models[0].parent)
    yield s
    s.stop()


def test_predict_embed_and_the_routes_that_describe_them(server):
    assert [line.split()[0] for line in server.lines[:2]] == ["loading", "loading"]  # said while it starts
    status, answer = server.request("POST", "/predict", {"texts": ["a superb and moving film", ["dull", "."]]})
    assert status == 200 and answer["model"] == "sentiment"
    first, second = answer["predictions"]
    assert first["tokens"] == ["a", "superb", "and", "moving", "film"] and second["tokens"] == ["dull", "."]
    assert first["label"] in ("negative", "neutral", "positive")
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-3
    status, answer = server.request("POST", "/embed", {"texts": ["a fine film", "dull"], "pool": "mean"})
    assert status == 200 and len(answer["embeddings"]) == 2
    assert [len(answer["embeddings"][0]), len(answer["embeddings"][0][0])] == [3, 32]  # (layers, 2P)
    _, top = server.request("POST", "/embed", {"texts": ["a fine film"], "layers": "top"})
    assert [len(top["embeddings"][0]), len(top["embeddings"][0][0])] == [3, 32]  # (tokens, 2P)
    status, average = server.request("POST", "/embed", {"texts": ["a b c d e f"], "layers": "average"})
    assert status == 200 and np.array(average["embeddings"][0]).shape == (6, 32)  # one layer's numbers: in the bound
    _, mixed = server.request("POST", "/embed", {"texts": ["a fine film"], "mix": [0, 0, 1], "pool": "max"})
    assert len(mixed["embeddings"][0]) == 32
    assert server.request("GET", "/health") == (200, {"status": "ok"})
    assert server.request("GET", "/ready")[1]["models"] == ["sentiment", "enc"]
    meta = server.request("GET", "/metadata")[1]
    kinds = {m["name"]: m for m in meta["models"]}
    assert kinds["sentiment"]["labels"] == ["negative", "neutral", "positive"] and kinds["enc"]["layers"] == 3
    assert kinds["sentiment"]["card"][0].startswith("# sentence classification model")
    assert meta["bounds"]["max_texts"] == 8
    spec = server.request("GET", "/openapi.json")[1]
    assert spec["openapi"].startswith("3.") and {"/predict", "/embed", "/health", "/ready"} <= set(spec["paths"])
    status, page = server.request("GET", "/")
    assert status == 200 and b"<textarea" in page


@pytest.mark.parametrize(
    "path, body, status, expect",
    [
        ("/predict", b'{"texts": ["a"', 400, "the body is not JSON: Expecting"),
        ("/predict", b'{"texts": ["\xff"]}', 400, "the body is not UTF-8: byte 0xff at offset 12"),
        ("/predict", b"[1, 2]", 422, "the body must be a JSON object, got an array"),
        ("/predict", {"textz": ["a"]}, 422, "unknown field 'textz' (did you mean 'texts'?)"),
        ("/predict", {"texts": "a film"}, 422, "texts: expected an array, got a string"),
        ("/predict", {"texts": []}, 422, "texts: empty"),
        ("/predict", {"texts": ["  "]}, 422, "texts[0]: empty (no tokens)"),
        ("/predict", {"texts": [3]}, 422, "texts[0]: expected a string or a list of tokens, got a number"),
        ("/predict", {"texts": [["a b"]]}, 422, "texts[0][0]: a token must be a non-empty string without spaces"),
        ("/predict", {"texts": ["bell \u0007"]}, 422, "texts[0]: control character U+0007 at position 5"),
        ("/predict", b'{"texts": ["\\ud800"]}', 422, "lone surrogate"),
        ("/predict", {"texts": ["a"] * 9}, 422, "texts: 9 items, over the bound of 8 (--max-texts)"),
        ("/predict", {"texts": ["word " * 41]}, 422, "texts[0]: 41 tokens, over the bound of 40 (--max-tokens)"),
        ("/predict", {"texts": ["a"], "model": "../../etc"}, 404, "no served model named '../../etc'"),
        ("/predict", {"pairs": [["a", "b"]]}, 422, "model 'sentiment' reads texts, not pairs: give 'texts'"),
        ("/predict", {"texts": ["a"], "model": "enc"}, 422, "model 'enc' is encoder: it answers /embed"),
        ("/embed", {"texts": ["a"], "layers": [7]}, 422, "layers: expected 'all', 'top', 'average' or layer numbers"),
        ("/embed", {"texts": ["a"], "mix": [1]}, 422, "mix: expected an array of 3 numbers"),
        ("/embed", {"texts": ["a"], "pool": "sum"}, 422, "pool: expected 'none', 'mean' or 'max'"),
        ("/embed", {"texts": ["a b c d e f"]}, 413, "the answer would hold 576 numbers, over the bound of 500"),
        ("/predict", b"x" * 5000, 413, "the body is 5,000 bytes, over the bound of 4,000 (--max-body-bytes)"),
        ("/nowhere", {}, 404, "no such path: /nowhere"),
    ],
)
def test_every_mistake_is_a_one_line_json_error_and_the_service_keeps_serving(server, path, body, status, expect):
    got, answer = server.request("POST", path, body)
    assert got == status and expect in answer["error"] and "\n" not in answer["error"], answer
    assert server.request("POST", "/predict", {"texts": ["still here"]})[0] == 200


def test_a_body_past_its_bound_without_a_length_and_a_client_that_leaves_mid_body(server):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.putrequest("POST", "/predict")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for _ in range(5):
        c.send(b"400\r\n" + b"x" * 0x400 + b"\r\n")
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    assert r.status == 413 and "over the bound of 4,000 bytes" in json.loads(r.read())["error"]
    with socket.create_connection(("127.0.0.1", server.port)) as s:  # promises 1,000 bytes, sends 10, leaves
        s.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"texts": ')
    assert server.request("GET", "/health")[0] == 200
    assert server.request("GET", "/", headers={}, body=None)[0] == 200
    status, answer = server.request("DELETE", "/predict")
    assert status == 405 and answer["error"] == "DELETE is not allowed on /predict"


def test_concurrent_requests_share_model_calls(models, tmp_path):
    s = Server(models[0], "--max-wait-ms", "200", "--batch-tokens", "100000", cwd=tmp_path)
    try:
        results = []
        big = {"texts": [" ".join(["a long and rather dull film"] * 30)] * 256}  # a slow call: the others queue
        threads = [threading.Thread(target=lambda: results.append(s.request("POST", "/predict", big)))]
        threads += [
            threading.Thread(target=lambda i=i: results.append(s.request("POST", "/predict", {"texts": [f"film {i}"]})))
            for i in range(12)
        ]
        for t in threads:
            t.start()
            time.sleep(0.005)
        for t in threads:
            t.join()
        assert [r[0] for r in results] == [200] * 13
        meta = s.request("GET", "/metadata")[1]["models"][0]
        assert meta["texts"] == 256 + 12 and meta["batches"] < 13, meta  # grouped (the warm-up call is not counted)
        assert s.request("POST", "/predict", {"texts": ["alone"]})[0] == 200  # a lone request is not held back
    finally:
        s.stop()


def test_a_full_queue_answers_503_and_sigterm_answers_every_accepted_request(models, tmp_path):
    s = Server(models[0], "--max-queue", "4", "--max-wait-ms", "1500", cwd=tmp_path)
    status, answer = s.request("POST", "/predict", {"texts": ["a"] * 5})
    assert status == 503 and "the queue holds 4 (--max-queue)" in answer["error"]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(s.request("POST", "/predict", {"texts": ["a", "b"]})))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(0.7)  # both accepted and waiting for their batch (1.5 s)
    s.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [200, 200] and all(len(r[1]["predictions"]) == 2 for r in results)
    assert s.proc.wait(timeout=60) == 128 + signal.SIGTERM  # the usual status of a process ended by SIGTERM
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=5)


def test_serving_beyond_loopback_warns_and_a_directory_that_is_no_model_is_one_line(models, tmp_path):
    p = cli("serve", tmp_path, cwd=tmp_path)
    assert p.returncode == 1 and "not a task model" in p.stderr and "Traceback" not in p.stderr
    p = cli("serve", models[0], models[0], cwd=tmp_path)
    assert p.returncode == 1 and "two served models named 'sentiment'" in p.stderr
    p = cli("serve", models[0], "--max-texts", "0", cwd=tmp_path)
    assert p.returncode == 1 and "--max-texts: must be at least 1, got 0" in p.stderr
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "serve", str(models[0]), "--host", "0.0.0.0",
                             "--port", "0"], env=env(), stderr=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip
    try:
        assert proc.stderr.readline().startswith("warning: serving on 0.0.0.0: whoever can reach this machine")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
