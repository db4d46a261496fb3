"""`snnc import`: mapping, blocks, names, errors at the user's line, atomic output, weights for --init."""

import io
import re
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from torch import nn

from snnc.cli.main import main
from snnc.diagnostics import SnncError
from snnc.importer import import_network
from snnc.ir.analysis import costs
from snnc.pipeline import compile_source
from test_info import torch_macs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
NETS = FIXTURES / "import_nets.py"
sys.path.insert(0, str(FIXTURES))
import import_nets as nets  # noqa: E402


def snnc(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def line_of(text: str) -> int:
    """The line of the fixture file holding `text`, found independently of the importer."""
    lines = NETS.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def assert_same_costs(module: nn.Module, dims, text: str):
    c = costs(compile_source(text, file="imported.snn").graph)
    assert c.params == sum(p.numel() for p in module.parameters())
    assert c.macs == torch_macs(module, dims)


# ---------------------------------------------------------------- mapping
def test_functional_forms_and_a_top_level_residual():
    net = nets.Functional()
    imp = import_network(net, (1, 8, 8))
    assert_same_costs(net, (1, 8, 8), imp.text)
    ops = [n.op for n in imp.graph.nodes]
    assert ops.count("lif") == 2 and ops.count("add") == 1 and "maxpool" in ops and "adaptive_avgpool" in ops
    assert "lif replaces F.relu" in imp.text and "lif replaces F.leaky_relu" in imp.text
    assert "-> dropout(0.2) -> fc(classes)" in imp.text


def test_view_and_same_padding_and_activation_modules():
    net = nets.Awkward()
    imp = import_network(net, (1, 8, 8))
    assert_same_costs(net, (1, 8, 8), imp.text)
    assert [n.op for n in imp.graph.nodes].count("lif") == 4
    for cls in ("ReLU6", "LeakyReLU", "ReLU"):
        assert f"lif replaces {cls}" in imp.text


def test_names_that_are_not_snn_names_are_renamed_deterministically():
    text = import_network(nets.Awkward(), (1, 8, 8)).text
    stages = re.findall(r"^  (\w+)\s+=", text, re.M)
    assert stages == ["class_", "input_", "conv_", "stage2nd", "head"]
    assert import_network(nets.Awkward(), (1, 8, 8)).text == text


def test_mean_over_space_is_global_average_pooling():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    imp = import_network(Net(), (3, 6, 6))
    assert "conv(8, 3, pad = 0, bias = true) -> lif -> adaptive_avgpool" in imp.text
    assert "head     = flatten -> fc(classes)" in imp.text
    assert_same_costs(Net(), (3, 6, 6), imp.text)


def test_options_reach_the_file():
    imp = import_network(nets.StagedVGG(), (3, 32, 32), name="vggs", neuron="if(vth=0.5)",
                         surrogate="arctan(beta=2)", T=6)
    assert "network vggs(T = 6, classes = 10)" in imp.text
    assert "neuron if(vth = 0.5)" in imp.text and "surrogate arctan(beta = 2.0)" in imp.text
    assert "-> if ->" in imp.text
    lif = imp.graph.of_op("lif")[0].attrs
    assert lif["decay"] == 1.0 and lif["vth"] == 0.5 and str(lif["surrogate"]) == "arctan(beta=2.0)"


# ----------------------------------------------------------------- blocks
def test_resnet50_bottlenecks_become_one_block():
    net = nets.small_resnet50()
    imp = import_network(net, (3, 32, 32))
    assert_same_costs(net, (3, 32, 32), imp.text)
    assert "block bottleneck(c, stride = 1) {" in imp.text
    assert "-> conv(4 * c, 1) -> bn" in imp.text
    assert "skip = (conv(4 * c, 1, stride) -> bn) if stride != 1 or in != 4 * c else identity" in imp.text
    assert "layer2 = bottleneck(16, stride = 2) -> bottleneck(16)" in imp.text


def test_a_repeated_stage_class_becomes_a_block_so_sml_applies():
    net = nets.StagedVGG()
    imp = import_network(net, (3, 32, 32))
    assert "block stage(c) {" in imp.text and "stages = stage(8) -> stage(16) x 2" in imp.text
    assert_same_costs(net, (3, 32, 32), imp.text)
    sml = compile_source(imp.text, file="staged.snn", recipe="sml(n=1)").graph
    assert sml.attrs["sml_blocks"] == ("stages.1",)


def test_blocks_inside_blocks():
    net = nets.GroupedResNet()
    imp = import_network(net, (3, 16, 16))
    assert_same_costs(net, (3, 16, 16), imp.text)
    assert "block group(c, stride = 1) {" in imp.text and "out = basic(c, stride = stride) -> basic(c)" in imp.text
    assert "groups = group(8) -> group(16, stride = 2) -> group(32, stride = 2)" in imp.text
    assert imp.text.index("block basic(") < imp.text.index("block group(")


def test_instances_that_no_condition_separates_split_into_two_blocks():
    class Unit(nn.Module):
        def __init__(self, c, pool):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
            self.pool = nn.AvgPool2d(2) if pool else nn.Identity()

        def forward(self, x):
            return self.pool(torch.relu(self.bn(self.conv(x))))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(Unit(4, True), Unit(4, False), Unit(4, True))
            self.fc = nn.Linear(4 * 2 * 2, 2)

        def forward(self, x):
            return self.fc(self.body(x).flatten(1))

    imp = import_network(Net(), (4, 8, 8))
    assert "block unit(" in imp.text and "block unit_2(" in imp.text
    assert "body = unit -> unit_2 -> unit" in imp.text
    assert_same_costs(Net(), (4, 8, 8), imp.text)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("name,dims,message,line", [
    ("Tanh", (1, 8, 8), "unsupported call torch.tanh", "torch.tanh(self.conv(x))"),
    ("Branchy", (4,), "torch.fx cannot trace Branchy: the code branches or loops on a tensor value",
     "if x.sum() > 0:"),
    ("SiluNet", (4,), "unsupported module nn.SiLU (self.act)", "self.fc2(self.act(self.fc1(x)))"),
])
def test_refusals_name_the_op_and_the_users_line(name, dims, message, line):
    with pytest.raises(SnncError) as info:
        import_network(getattr(nets, name)(), dims)
    err = info.value
    assert err.message.startswith(message)
    assert Path(err.loc.file).resolve() == NETS.resolve() and err.loc.line == line_of(line)


@pytest.mark.parametrize("body,message", [
    ("self.fc(x.view(-1, 8))", "Tensor.view() to (-1, 8) is not supported"),
    ("self.fc(self.conv(x))", "Linear (self.fc) receives a [4,4,4] tensor per sample"),
    ("self.fc(self.conv(self.conv(x)).flatten(1))", "Conv2d (self.conv) is called twice"),
    ("self.fc((self.conv(x) * 2).flatten(1))", "*: multiplying a tensor by a constant is not supported"),
    ("self.fc(torch.flatten(self.conv(x) + 1, 1))", "adding a constant to a tensor is not supported"),
])
def test_refusals_of_shapes_and_sharing(body, message):
    source = f"""
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        return {body}
"""
    namespace = {}
    exec(compile(source, "<net>", "exec"), namespace)
    with pytest.raises(SnncError) as info:
        import_network(namespace["Net"](), (4, 4, 4))
    assert info.value.message.startswith(message), info.value.message


def test_non_square_kernels_and_bad_options_are_refused():
    with pytest.raises(SnncError, match="kernel_size=\\(1, 3\\) is not supported"):
        import_network(nn.Sequential(nn.Conv2d(1, 2, (1, 3)), nn.Flatten(), nn.Linear(2 * 4 * 2, 2)), (1, 4, 4))
    with pytest.raises(SnncError, match="unknown neuron 'lfi'"):
        import_network(nets.Functional(), (1, 8, 8), neuron="lfi")
    with pytest.raises(SnncError, match="'vth' = -1.0 is out of range"):
        import_network(nets.Functional(), (1, 8, 8), neuron="lif(vth=-1)")
    with pytest.raises(SnncError, match="Python keyword"):
        import_network(nets.Functional(), (1, 8, 8), name="class")


# -------------------------------------------------------------------- CLI
def test_cli_writes_the_file_and_reports(tmp_path):
    out = tmp_path / "staged.snn"
    code, stdout, stderr = snnc("import", f"{NETS}:StagedVGG", "--input", "3,32,32", "-o", out,
                                "--kwargs", '{"num_classes": 7}')
    assert code == 0, stderr
    assert "network staged_vgg(T = 4, classes = 7)" in out.read_text()
    assert "blocks: stage" in stderr and "stages: stages, head" in stderr
    assert snnc("check", out)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staged.snn"]


def test_cli_prints_to_stdout_without_o():
    code, stdout, _ = snnc("import", f"{NETS}:Functional", "--input", "1,8,8")
    assert code == 0 and stdout.startswith("# Functional from ") and "network functional(" in stdout


def test_a_failed_import_leaves_no_file_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "net.snn"
    code, _, stderr = snnc("import", f"{NETS}:Tanh", "--input", "1,8,8", "-o", out)
    assert code == 1 and "Traceback" not in stderr
    assert f"import_nets.py:{line_of('torch.tanh(self.conv(x))')}:9: error: unsupported call torch.tanh" \
        in stderr
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []
    out.write_text("keep me\n")
    assert snnc("import", f"{NETS}:Tanh", "--input", "1,8,8", "-o", out)[0] == 1
    assert out.read_text() == "keep me\n" and [p.name for p in tmp_path.iterdir()] == ["net.snn"]


@pytest.mark.parametrize("argv,message", [
    (["nope.py:Net"], "error: no such file: nope.py"),
    ([f"{NETS}:Nope"], "has no 'Nope'"),
    ([f"{NETS}:VGG", "--kwargs", "{bad"], "--kwargs is not valid JSON"),
    ([f"{NETS}:VGG", "--kwargs", '{"depth": 3}'], "building VGG failed: TypeError"),
])
def test_cli_user_errors(argv, message):
    code, _, stderr = snnc("import", *argv, "--input", "3,32,32")
    assert code == 1 and message in stderr and "Traceback" not in stderr


def test_cli_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        snnc("import", f"{NETS}:VGG", "--input", "3,x,32")
    assert info.value.code == 2


# ---------------------------------------------------------------- weights
def test_weights_become_an_init_checkpoint_that_train_py_loads(tmp_path):
    from safetensors.torch import load_file

    from snnc.compiler import compile_to
    from snnc.importer.fxcheck import load_generated
    from snnc.runtime.setup import init_weights

    torch.manual_seed(0)
    ann = nets.resnet18_cifar(width=8)
    for m in ann.modules():  # trained-looking statistics, so that nothing matches by accident
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    torch.save(ann.state_dict(), tmp_path / "ann.pt")
    code, _, stderr = snnc("import", f"{NETS}:resnet18_cifar", "--kwargs", '{"width": 8}', "--input", "3,32,32",
                           "-o", tmp_path / "r18.snn", "--weights", tmp_path / "ann.pt")
    assert code == 0, stderr
    ckpt = load_file(str(tmp_path / "r18.safetensors"))
    assert len(ckpt) == len(ann.state_dict())
    assert "mapped 122 tensors" in stderr and "have no place" not in stderr

    compiled = compile_to(tmp_path / "r18.snn", "sml+tet", tmp_path / "build")
    snn = load_generated((tmp_path / "build" / "model.py").read_text()).build_model()
    printed = io.StringIO()
    with redirect_stdout(printed):
        init_weights(snn, str(tmp_path / "r18.safetensors"))
    assert f"loaded {len(ckpt)} tensors" in printed.getvalue() and "unused" not in printed.getvalue()
    assert compiled.graph.attrs["sml_blocks"]

    # where each ANN module must land, written out by hand from the names in models/resnet18.snn
    def snn_name(path: str) -> str:
        fixed = {"conv1": "stem_conv", "bn1": "stem_bn", "fc": "head_fc"}
        if path in fixed:
            return fixed[path]
        layer, index, rest = path.split(".", 2)
        local = {"conv1": "main_conv0", "bn1": "main_bn0", "conv2": "main_conv1", "bn2": "main_bn1",
                 "downsample.0": "skip_conv", "downsample.1": "skip_bn"}[rest]
        return f"{layer}_{index}_{local}"

    snn_state = snn.state_dict()
    for key, value in ann.state_dict().items():
        path, tensor = key.rsplit(".", 1)
        assert torch.equal(snn_state[f"{snn_name(path)}.{tensor}"], value), key


def test_weights_out_without_o_prints_the_text_and_writes_the_checkpoint(tmp_path):
    from safetensors.torch import load_file

    ann = nets.StagedVGG()
    torch.save(ann.state_dict(), tmp_path / "ann.pt")
    argv = ["import", f"{NETS}:StagedVGG", "--input", "3,32,32", "--weights", tmp_path / "ann.pt"]
    code, _, stderr = snnc(*argv)
    assert code == 1 and "--weights needs -o OUT.snn or --weights-out PATH" in stderr
    code, stdout, stderr = snnc(*argv, "--weights-out", tmp_path / "init.safetensors")
    assert code == 0 and stdout.startswith("# StagedVGG from ")
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    expected = [f"stages_{i}_out_{op}.{t}" for i in range(3)
                for op, tensors in (("conv0", ["weight"]), ("bn0", bn), ("conv1", ["weight"]), ("bn1", bn))
                for t in tensors] + ["head_fc.weight", "head_fc.bias"]
    assert sorted(load_file(str(tmp_path / "init.safetensors"))) == sorted(expected)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    torch.save(nets.resnet18_cifar(width=4).state_dict(), tmp_path / "other.pt")
    code, _, stderr = snnc("import", f"{NETS}:resnet18_cifar", "--kwargs", '{"width": 8}', "--input", "3,32,32",
                           "-o", tmp_path / "r18.snn", "--weights", tmp_path / "other.pt")
    assert code == 1 and "does not fit the network" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.pt"]


@pytest.mark.parametrize("cls, snake", [("ResNet18", "resnet18"), ("GroupedResNet", "grouped_resnet"),
                                        ("MobileNetV2", "mobilenet_v2"), ("BasicBlock", "basic_block"),
                                        ("VGGStage", "vgg_stage"), ("LeNet", "lenet"), ("DPN92", "dpn92")])
def test_imported_names_read_as_the_networks_are_spelled(cls, snake):
    from snnc.importer.naming import block_base, snake_case

    assert snake_case(cls) == snake
    assert block_base("Block") == "block_unit"  # `block` is a keyword; `block_` read badly


def test_the_network_name_of_a_resnet_class():
    code, text, _ = snnc("import", f"{NETS}:GroupedResNet", "--input", "3,32,32")
    assert code == 0 and "network grouped_resnet(" in text and "__" not in text


def test_a_missing_target_lists_classes_and_factory_functions():
    code, _, stderr = snnc("import", f"{NETS}:Nope", "--input", "3,32,32")
    assert code == 1 and "modules: " in stderr and "functions: " in stderr
    assert "resnet18_cifar" in stderr.split("functions: ")[1] and "conv3x3" in stderr


def test_the_extract_hint_is_one_shell_word_of_python_whatever_the_key(tmp_path):
    import ast
    import shlex

    from snnc.runtime.weights import _wrapped_hint

    key, path = 'x"$(touch pwned)"\'', tmp_path / "it's here.pt"
    hint = _wrapped_hint(path, {key: {"w": torch.zeros(1)}})
    words = shlex.split(hint.split("extract it with: ")[1])
    assert words[:2] == ["python", "-c"] and len(words) == 3  # no word the shell would expand or split
    call = ast.parse(words[2]).body[1].value  # torch.save(torch.load(PATH)[KEY], 'weights.pt')
    assert call.args[0].value.args[0].value == str(path) and call.args[0].slice.value == key
    assert "extract it with" not in _wrapped_hint(path, {"k" * 200: {"w": torch.zeros(1)}})  # too long to paste


def test_a_checkpoint_that_wraps_the_state_dict_gets_a_hint(tmp_path):
    state = nets.StagedVGG().state_dict()
    torch.save({"net": state, "acc": 93.1, "epoch": 200}, tmp_path / "ckpt.pth")
    code, _, stderr = snnc("import", f"{NETS}:StagedVGG", "--input", "3,32,32", "-o", tmp_path / "v.snn",
                           "--weights", tmp_path / "ckpt.pth")
    assert code == 1 and "wraps a state dict under 'net'" in stderr and '["net"]' in stderr
    torch.save(torch.load(tmp_path / "ckpt.pth")["net"], tmp_path / "weights.pt")  # what the hint says to run
    assert snnc("import", f"{NETS}:StagedVGG", "--input", "3,32,32", "-o", tmp_path / "v.snn",
                "--weights", tmp_path / "weights.pt")[0] == 0


def test_a_constructor_missing_arguments_hints_at_kwargs():
    code, _, stderr = snnc("import", f"{NETS}:ResNet", "--input", "3,32,32")
    assert code == 1 and "missing" in stderr and "--kwargs" in stderr
