"""tensor-inspector diff: a Keras model against its PyTorch port, and what differs between copies."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from tensor_inspector.cli import main

PAIR_KEYS = {"a", "b", "transform", "shape_a", "shape_b", "dtype_a", "dtype_b"}
PAIR_KEYS |= {"max_abs", "max_rel", "mean_abs", "rmse", "cosine", "beyond", "equal"}


@pytest.fixture(scope="module")
def ported(tmp_path_factory):
    from compare_fixtures import build_ported_model

    return build_ported_model(tmp_path_factory.mktemp("ported"))


def diff(capsys, *args):
    code = main(["diff", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


def diff_json(capsys, *args):
    code, out, err = diff(capsys, *args, "--json")
    return code, json.loads(out) if out else None, err


@pytest.mark.parametrize("keras_side", ["checkpoint", "keras_file"])
@pytest.mark.parametrize("torch_side", ["torch_file", "safetensors_file"])
def test_keras_weights_against_their_torch_port(ported, capsys, keras_side, torch_side):
    code, report, _ = diff_json(capsys, getattr(ported, keras_side), getattr(ported, torch_side))
    assert code == 0
    assert report["only_a"] == [] and report["only_b"] == []
    pairs = {p["b"].removeprefix("module."): p for p in report["pairs"]}
    assert set(pairs) == set(ported.torch_weights)  # every tensor mapped
    for name, pair in pairs.items():
        assert PAIR_KEYS <= set(pair)
        assert pair["max_abs"] == 0 and pair["beyond"] == 0 and pair["equal"] and pair["cosine"] == 1
        perm = ported.transposed.get(name)
        assert pair["transform"] == (None if perm is None else f"transpose({','.join(map(str, perm))})")
        assert pair["shape_b"] == list(ported.torch_weights[name].shape)


def perturbed_copy(ported, tmp_path, change):
    weights = {k: v.copy() for k, v in ported.torch_weights.items()}
    change(weights)
    path = tmp_path / "changed.safetensors"
    save_file(weights, str(path))
    return path


def test_one_perturbed_element_is_the_worst_pair_and_exit_code_3(ported, tmp_path, capsys):
    def change(w):
        w["fc1.weight"][3, 10] += 0.01  # fc1.weight is (5, in)

    changed = perturbed_copy(ported, tmp_path, change)
    code, report, _ = diff_json(capsys, ported.checkpoint, changed)
    assert code == 3
    worst = report["pairs"][0]
    assert worst["b"] == "fc1.weight" and worst["transform"] == "transpose(1,0)"
    original = float(ported.torch_weights["fc1.weight"][3, 10])
    moved = float(np.float32(original) + np.float32(0.01))
    count = ported.torch_weights["fc1.weight"].size
    assert worst["max_abs"] == pytest.approx(abs(moved - original), rel=1e-12)
    assert worst["max_rel"] == pytest.approx(abs(moved - original) / abs(moved), rel=1e-12)
    assert worst["mean_abs"] == pytest.approx(abs(moved - original) / count, rel=1e-9)
    assert worst["rmse"] == pytest.approx(abs(moved - original) / count**0.5, rel=1e-9)
    assert worst["cosine"] < 1 and worst["beyond"] == 1 and not worst["equal"]
    assert worst["worst"] == [3, 10]
    assert all(p["max_abs"] == 0 for p in report["pairs"][1:])
    code, _, _ = diff_json(capsys, ported.checkpoint, changed, "--atol", "0.011")
    assert code == 0
    code, out, err = diff(capsys, ported.checkpoint, changed)
    assert code == 3 and out.splitlines()[1].split()[:3] == [
        "model/_operations/9/_kernel",
        "fc1.weight",
        "transpose(1,0)",
    ]
    assert "1 beyond tolerance" in err


def test_removed_and_renamed_tensors_are_unpaired(ported, tmp_path, capsys):
    def change(w):
        del w["ln.bias"]
        w["head.weight"] = w.pop("fc2.weight")

    code, report, _ = diff_json(capsys, ported.keras_file, perturbed_copy(ported, tmp_path, change))
    assert code == 3
    assert sorted(report["only_a"]) == ["fc2/kernel", "ln/beta"]
    assert report["only_b"] == ["head.weight"]
    assert all(p["equal"] for p in report["pairs"])
    code, out, _ = diff(capsys, ported.keras_file, perturbed_copy(ported, tmp_path, change))
    assert "only in A: ln/beta" in out and "only in B: head.weight" in out


def test_bf16_against_float32_copy_is_exact(tmp_path, capsys):
    rng = np.random.default_rng(0)
    weights = {
        "w": rng.normal(size=(64, 33)).astype(ml_dtypes.bfloat16),
        "b": np.arange(5, dtype=ml_dtypes.bfloat16),
    }
    torch.save(
        {k: torch.from_numpy(v.view(np.int16)).view(torch.bfloat16) for k, v in weights.items()},
        tmp_path / "bf16.pt",
    )
    save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(tmp_path / "f32.safetensors"))
    code, report, _ = diff_json(capsys, tmp_path / "bf16.pt", tmp_path / "f32.safetensors")
    assert code == 0
    for pair in report["pairs"]:
        assert (pair["dtype_a"], pair["dtype_b"]) == ("bfloat16", "float32")
        assert pair["max_abs"] == 0 and pair["beyond"] == 0 and not pair["equal"]  # same values, other bytes
    # rounding the float32 side by one bf16 step is seen
    moved = weights["w"].astype(np.float32)
    moved[7, 7] = np.nextafter(moved[7, 7], np.float32(100))
    save_file({"w": moved}, str(tmp_path / "moved.safetensors"))
    code, report, _ = diff_json(capsys, f"{tmp_path / 'bf16.pt'}::w", f"{tmp_path / 'moved.safetensors'}::w")
    assert code == 3 and report["pairs"][0]["beyond"] == 1


def test_file_node_pairs(ported, capsys):
    a = f"{ported.keras_file}::fc2/kernel"
    code, report, _ = diff_json(capsys, a, f"{ported.torch_file}::module.fc2.weight")
    assert code == 0 and len(report["pairs"]) == 1
    assert report["pairs"][0]["transform"] == "transpose(1,0)"  # square: the names say so
    # one tensor against a whole file: its partner is found by name, the rest is not reported
    code, report, _ = diff_json(capsys, a, ported.safetensors_file)
    assert code == 0 and [p["b"] for p in report["pairs"]] == ["fc2.weight"] and report["only_b"] == []
    # two unrelated tensors compare as named (same shape, different values)
    code, report, _ = diff_json(
        capsys, f"{ported.keras_file}::bn1/moving_mean", f"{ported.torch_file}::module.bn1.running_var"
    )
    assert code == 3 and report["pairs"][0]["max_abs"] > 0
    code, _, err = diff(capsys, f"{ported.keras_file}::nope", ported.torch_file)
    assert code == 1 and "nope" in err and "Traceback" not in err


def test_rules_file(ported, tmp_path, capsys):
    def change(w):
        for key in [k for k in w if k.startswith("fc")]:
            w[key.replace("fc", "dense_", 1)] = w.pop(key)

    renamed = perturbed_copy(ported, tmp_path, change)
    code, report, _ = diff_json(capsys, ported.keras_file, renamed)
    assert code == 3 and len(report["only_b"]) == 4
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {"a": r"fc(\d)/kernel", "b": r"dense_\1.weight", "transpose": [1, 0]},
                {"a": r"fc(\d)/bias", "b": r"dense_\1.bias"},
            ]
        )
    )
    code, report, _ = diff_json(capsys, ported.keras_file, renamed, "--map", rules)
    assert code == 0 and report["only_b"] == []
    assert {p["a"]: p["b"] for p in report["pairs"]}["fc1/kernel"] == "dense_1.weight"
    rules.write_text('[{"a": "("}]')
    code, _, err = diff(capsys, ported.keras_file, renamed, "--map", rules)
    assert code == 2 and "Rule 1" in err


def test_isolate_gives_the_same_json(ported, tmp_path, capsys):
    def change(w):
        w["conv1.weight"][1, 2, 0, 1] = np.nan

    changed = perturbed_copy(ported, tmp_path, change)
    local = diff_json(capsys, ported.checkpoint, changed, "--atol", "1e-6")
    isolated = diff_json(capsys, ported.checkpoint, changed, "--atol", "1e-6", "--isolate")
    assert local == isolated
    worst = local[1]["pairs"][0]
    assert (
        local[0] == 3 and worst["b"] == "conv1.weight" and worst["nan_mismatch"] == 1 and worst["beyond"] == 1
    )


def test_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", "only-one"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["diff", "a", "b", "--atol", "-1"])
    assert exit_info.value.code == 2
    assert "not a tolerance" in capsys.readouterr().err
    code, _, err = diff(capsys, tmp_path / "missing.npy", tmp_path / "other.npy")
    assert code == 1 and err.startswith("tensor-inspector: error:")
