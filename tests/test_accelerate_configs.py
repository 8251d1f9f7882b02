"""Every accelerate config in accelerate_configs/ parses with accelerate's own config classes and holds the
keys its distributed type needs; fp16 appears nowhere (T5 overflows); the CPU 2-rank config really launches
two processes (that is checked end to end in test_pretrain_train.py::test_two_ranks_match_one_rank)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "accelerate_configs").glob("*.yaml"))
EXPECTED = {
    "cpu_2ranks", "cpu_single", "single_gpu", "multi_gpu_ddp", "deepspeed_zero2", "deepspeed_zero3",
    "deepspeed_zero3_offload", "deepspeed_zero2_cpu_test", "fsdp", "multi_node",
}


def _launch_options() -> set[str]:
    from accelerate.commands.launch import launch_command_parser

    parser = launch_command_parser()
    return {a.dest for a in parser._actions}


def test_expected_configs_exist():
    assert {p.stem for p in CONFIGS} >= EXPECTED


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_parses_and_is_complete(path: Path):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    raw = yaml.safe_load(path.read_text())
    cfg = load_config_from_file(str(path))  # raises on unknown keys
    assert isinstance(cfg, ClusterConfig)
    for key in ("compute_environment", "distributed_type", "num_machines", "num_processes", "mixed_precision"):
        assert key in raw, f"{path.name}: {key} missing"
    assert cfg.mixed_precision in ("no", "bf16"), f"{path.name}: fp16 overflows T5; use bf16 or no"
    assert cfg.num_processes >= 1 and cfg.num_machines >= 1
    assert 0 <= cfg.machine_rank < cfg.num_machines
    options = _launch_options()
    gpu = not raw.get("use_cpu", False)
    if gpu:
        assert cfg.mixed_precision == "bf16", f"{path.name}: GPU configs train in bf16"
    if cfg.distributed_type == DistributedType.DEEPSPEED:
        ds = cfg.deepspeed_config
        assert ds["zero_stage"] in (2, 3)
        for key in ds:
            assert key in options, f"{path.name}: deepspeed_config.{key} is not an accelerate launch option"
        from accelerate.utils import DeepSpeedPlugin

        plugin = DeepSpeedPlugin(**{k: v for k, v in ds.items() if k in (
            "zero_stage", "offload_optimizer_device", "offload_param_device", "zero3_init_flag",
            "zero3_save_16bit_model", "gradient_clipping")})
        assert plugin.deepspeed_config["zero_optimization"]["stage"] == ds["zero_stage"]
        if ds["zero_stage"] == 3:
            assert ds.get("zero3_save_16bit_model") is True, "final/ needs a gathered 16-bit model under ZeRO-3"
    if cfg.distributed_type == DistributedType.FSDP:
        for key in cfg.fsdp_config:
            assert key in options, f"{path.name}: fsdp_config.{key} is not an accelerate launch option"
        assert cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "MT5Block"
        from transformers.models.mt5 import modeling_mt5

        assert hasattr(modeling_mt5, "MT5Block")
    if cfg.num_machines > 1:
        assert raw.get("main_process_ip") and raw.get("main_process_port")
        assert "machine_rank" in path.read_text() and "# " in path.read_text()  # template with instructions


def test_cpu_2ranks_goes_to_the_multi_process_launcher():
    """accelerate 1.15 starts N CPU processes only via its multi-GPU (torchrun) launcher."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    args = launch_command_parser().parse_args(
        ["--config_file", str(REPO / "accelerate_configs" / "cpu_2ranks.yaml"), "x.py"]
    )
    args, _, _ = _validate_launch_command(args)
    assert args.multi_gpu and not args.cpu and args.use_cpu and args.num_processes == 2
    single = launch_command_parser().parse_args(
        ["--config_file", str(REPO / "accelerate_configs" / "cpu_single.yaml"), "x.py"]
    )
    single, _, _ = _validate_launch_command(single)
    assert not single.multi_gpu and single.num_processes == 1
