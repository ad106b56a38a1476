"""`kb doctor`: real checks of this machine, the bundled models, the stores and a model server."""

import json

from conftest import run_kb
from tests_support import free_port

from kb.config import Settings
from kb.doctor import first_token_seconds, recommend


def test_the_recommendation_weighs_memory_against_cores():
    small = recommend(available_gb=19.0, cores=2, gpu=None)
    assert small["params_b"] == 1.5
    assert "memory would hold 14B" in small["verdict"]
    big = recommend(available_gb=6.5, cores=16, gpu=None)
    assert big["params_b"] == 7.0 and "first token" in big["verdict"]
    assert recommend(available_gb=1.2, cores=8, gpu=None)["params_b"] is None
    assert "GPU" in recommend(available_gb=19.0, cores=2, gpu="NVIDIA")["verdict"]
    assert first_token_seconds(3.0, 2) == 2 * first_token_seconds(1.5, 2)


def test_doctor_checks_the_bundled_model_and_the_store(tmp_path, open_kb):
    report = open_kb(Settings(home=tmp_path / "kb")).doctor(verify=True)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"], report
    assert "sha256 verified" in checks["chat model"]["detail"]
    assert checks["vector store"]["status"] == "ok" and checks["refusal checks"]["status"] == "ok"
    assert report["machine"]["cores"] >= 1 and report["machine"]["memory_total_gb"] > 0
    assert report["recommendation"]["verdict"]


def test_doctor_fails_on_a_broken_model_and_an_unreachable_model_server(tmp_path, open_kb):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all")
    broken = open_kb(Settings(home=tmp_path / "a", llm_model=str(fake))).doctor()
    checks = {c["name"]: c for c in broken["checks"]}
    assert not broken["ok"] and checks["chat model"]["status"] == "fail"
    assert "bad magic" in checks["chat model"]["detail"]
    url = f"http://127.0.0.1:{free_port()}/v1"
    remote = open_kb(Settings(home=tmp_path / "b", llm_url=url)).doctor()
    checks = {c["name"]: c for c in remote["checks"]}
    assert checks["model server"]["status"] == "fail" and url in checks["model server"]["detail"]
    assert checks["refusal checks"]["status"] == "warn"
    assert "logit" in checks["refusal checks"]["detail"]


def test_kb_doctor_json_and_exit_code(tmp_path):
    result = run_kb("doctor", "--json", "--no-verify", env={"KB_HOME": str(tmp_path / "kb")})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"cpu", "cores", "memory", "disk", "gpu", "chat model"} <= {
        c["name"] for c in report["checks"]
    }
    text = run_kb("doctor", "--no-verify", env={"KB_HOME": str(tmp_path / "kb")})
    assert "verdict:" in text.stdout
