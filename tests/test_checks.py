"""The exercise checks: pass quietly with a tick, fail with a message that says what was expected,
what came, how far off (relative error and tolerance) and, for models, which layer."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from alexnet_edu.model import AlexNet
from alexnet_edu.notebook.checks import (
    CheckFailed,
    check_close,
    check_equal,
    check_layers,
    check_shape,
    check_true,
    relative_error,
)


def failure(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as err:
        fn(*args, **kwargs)
    assert isinstance(err.value, AssertionError)  # pytest, nbval and nbgrader count it
    return str(err.value)


def test_relative_error_is_cs231n_measure():
    x, y = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([1.0, 2.2, 0.0])
    assert relative_error(x, y) == pytest.approx(0.2 / 4.2)
    assert relative_error(x, x) == 0.0
    assert relative_error(torch.zeros(0), torch.zeros(0)) == 0.0
    # mixed kinds (numpy vs tensor, int vs float, tensor needing grad) all compare
    w = torch.tensor([3.0], requires_grad=True)
    assert relative_error(w * 1, np.array([1])) == pytest.approx(0.5)


def test_check_close_passes_with_a_tick(capsys):
    # a relative perturbation: an absolute one (x + 1e-9) fails near zero, as it should
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    x[0, 0] = 3e-4
    check_close("your LRN", x * (1 + 1e-7), x, tol=1e-6)
    out = capsys.readouterr().out
    assert out.startswith("\u2714 your LRN: relative error") and "tolerance 1e-06" in out


def test_check_close_reports_error_tolerance_and_worst_index():
    expected = torch.ones(2, 3)
    got = expected.clone()
    got[1, 2] = 1.5
    message = failure(check_close, "your LRN", got, expected, tol=1e-5)
    assert message.startswith("your LRN: relative error 2.00e-01 is above the tolerance 1e-05")
    assert "max|x-y| / max(1e-8, |x|+|y|)" in message
    assert "index (1, 2): got 1.5, expected 1" in message


def test_check_equal_on_long_lists_names_the_first_difference_and_passes_in_one_line(capsys):
    expected = [True] * 50
    got = list(expected)
    got[7] = got[31] = False
    message = failure(check_equal, "top-1 correct", got, expected)
    assert message == ("top-1 correct: 2 of 50 values differ; the first at index 7: "
                       "expected True, got False")
    assert failure(check_equal, "x", [1] * 9, [1] * 10) == "x: expected 10 values, got 9"
    check_equal("top-1 correct", expected, expected)
    assert capsys.readouterr().out == "\u2714 top-1 correct: all 50 values as expected\n"
    check_equal("size", (6, 6), (6, 6))                    # short ones are shown in full
    assert capsys.readouterr().out == "\u2714 size: (6, 6)\n"


def test_check_close_shows_the_values_its_error_comes_from():
    # the largest absolute difference (index 0) is not where the relative error is largest
    expected = torch.tensor([100.0, 0.2])
    got = torch.tensor([100.5, 0.3])
    message = failure(check_close, "x", got, expected, tol=1e-3)
    assert "relative error 2.00e-01" in message and "index (1,): got 0.3, expected 0.2" in message


def test_check_close_formats_any_tolerance_faithfully():
    message = failure(check_close, "x", torch.tensor([1.0]), torch.tensor([2.0]), tol=2.5e-3)
    assert "tolerance 0.0025" in message


def test_check_close_names_shapes_and_missing_answers():
    assert failure(check_close, "conv1", torch.ones(3, 2), torch.ones(2, 3)) == (
        "conv1: expected shape (2, 3), got (3, 2)")
    assert "no answer yet" in failure(check_close, "conv1", None, torch.ones(2))
    assert "no answer yet (got Ellipsis)" in failure(check_close, "conv1", ..., torch.ones(2))
    assert "got a str" in failure(check_close, "conv1", "1, 2", torch.ones(2))
    assert "NaN or infinite" in failure(check_close, "conv1", torch.tensor([1.0, float("nan")]),
                                        torch.ones(2))


def test_check_shape_messages():
    assert failure(check_shape, "LRN out", torch.ones(8, 55, 96, 55), (8, 96, 55, 55)) == (
        "LRN out: expected shape (8, 96, 55, 55), got (8, 55, 96, 55) "
        "(the same sizes in another order: a transpose or permute?)")
    assert "3 dimensions instead of 4" in failure(check_shape, "x", torch.ones(96, 55, 55),
                                                   (8, 96, 55, 55))
    assert "expected a tensor of shape (2,), got a int" in failure(check_shape, "x", 3, (2,))
    check_shape("x", torch.ones(2, 3).shape, (2, 3))  # a shape itself is accepted
    check_shape("x", np.zeros((2, 3)), [2, 3])


def test_check_equal_messages():
    assert failure(check_equal, "conv2 size", 27.5, 27) == (
        "conv2 size: expected 27, got 27.5 - sizes are whole numbers: did you forget to floor "
        "the division?")
    assert "no answer yet" in failure(check_equal, "conv2 size", None, 27)
    assert "(a str, expected a int)" in failure(check_equal, "conv2 size", "27", 27)
    assert "expected 27, got tensor" in failure(check_equal, "n", torch.tensor([27, 27]), 27)
    check_equal("conv2 size", torch.tensor(27), 27)
    check_equal("shape", torch.tensor([8, 96]), (8, 96))
    check_equal("shape", torch.ones(8, 96).shape, (8, 96))
    # the same values as a tuple, list, tensor or array are the same answer (a long one too)
    check_equal("sides", (55, 27), [55, 27])
    check_equal("sides", tuple(range(9)), list(range(9)))
    check_equal("sides", np.array([55, 27]), [55, 27])
    check_equal("sides", torch.tensor([55]), [55])
    assert failure(check_equal, "sides", torch.tensor(55), (55, 55)) == (
        "sides: expected (55, 55), got 55")
    assert failure(check_equal, "sides", np.int64(55), [55, 55]) == (
        "sides: expected [55, 55], got 55")
    assert "1 of 9 values differ" in failure(check_equal, "s", tuple(range(8)) + (0,),
                                             list(range(9)))
    # a NaN or infinite answer is a wrong number, said as such (not a ValueError from int())
    assert failure(check_equal, "conv2 size", float("nan"), 27) == (
        "conv2 size: expected 27, got nan")
    assert failure(check_equal, "conv2 size", float("inf"), 27) == (
        "conv2 size: expected 27, got inf")


def test_check_true():
    check_true("positive", True, "never shown")
    assert failure(check_true, "positive", False, "the loss must be > 0") == (
        "positive: the loss must be > 0")


@pytest.fixture(scope="module")
def small_models():
    torch.manual_seed(0)
    reference = AlexNet(num_classes=10, image_size=67)
    student = AlexNet(num_classes=10, image_size=67)
    student.load_state_dict(reference.state_dict())
    return student, reference, torch.randn(2, 3, 67, 67)


def test_check_layers_passes_for_the_same_model(small_models, capsys):
    student, reference, x = small_models
    student.train()
    check_layers(student, reference, x)
    assert "all 13 layers agree" in capsys.readouterr().out
    assert student.training  # the student's mode is restored


def test_check_layers_names_the_first_layer_that_differs(small_models):
    student, reference, x = small_models
    broken = AlexNet(num_classes=10, image_size=67)
    broken.load_state_dict(student.state_dict())
    with torch.no_grad():
        broken.layer("conv3").bias += 0.5
    message = failure(check_layers, broken, reference, x)
    assert message.startswith("layer conv3: relative error")
    assert "above the tolerance 1e-05" in message
    assert re.search(r"got -?[\d.e+-]+, expected -?[\d.e+-]+", message)
    assert "the layers before it (conv1, norm1, pool1, conv2, norm2, pool2) agree" in message


def test_check_layers_reports_shape_and_missing_layers(small_models):
    _, reference, x = small_models
    five = AlexNet(num_classes=5, image_size=67)
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc8")}
    five.load_state_dict(state, strict=False)
    message = failure(check_layers, five, reference, x)
    assert message.startswith("layer fc8: expected shape (2, 10), got (2, 5); the layers before "
                              "it (conv1, norm1")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv1(x)

    message = failure(check_layers, Tiny(), reference, x)
    assert "your model has no layer called 'norm1'" in message


def test_check_layers_says_where_a_model_crashed(small_models):
    _, reference, x = small_models
    names = [n for n in reference.layer_names() if not n.startswith(("drop", "relu"))]

    class Wrong(torch.nn.Module):
        """Every layer of the reference, but fc6 expects the wrong number of inputs."""

        def __init__(self):
            super().__init__()
            for name in names:
                layer = reference.layer(name)
                if name == "fc6":
                    layer = torch.nn.Linear(10, 4096)
                self.add_module(name, layer)

        def forward(self, x):
            for name in names:
                x = getattr(self, name)(x)
                if name == "pool5":
                    x = x.flatten(1)
            return x

    message = failure(check_layers, Wrong(), reference, x)
    assert message.startswith("your model raised in layer fc6: RuntimeError")


def test_not_implemented_reaches_the_student(small_models):
    # the released notebooks' placeholder must not be turned into a check failure
    _, reference, x = small_models

    class Unfinished(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            raise NotImplementedError()

    with pytest.raises(CheckFailed):  # a missing layer is reported first...
        check_layers(Unfinished(), reference, x)
    names = [n for n in reference.layer_names() if not n.startswith(("drop", "relu"))]
    model = Unfinished()
    for name in names[1:]:
        model.add_module(name, torch.nn.Identity())
    with pytest.raises(NotImplementedError):  # ...then the student's own NotImplementedError
        check_layers(model, reference, x)


def test_check_close_atol_forgives_rounding_near_zero_only():
    expected = torch.tensor([1.0, 1e-9, -0.5])
    rounded = torch.tensor([1.0, 2e-9, -0.5])      # relative error 1/3 at a value near zero
    with pytest.raises(CheckFailed, match="relative error"):
        check_close("map", rounded, expected, tol=1e-3)
    check_close("map", rounded, expected, tol=1e-3, atol=1e-6)
    wrong = torch.tensor([1.0, 1e-9, -0.4])        # a real error is still caught
    with pytest.raises(CheckFailed, match="relative error"):
        check_close("map", wrong, expected, tol=1e-3, atol=1e-6)


def test_check_close_names_the_first_value_off_as_well_as_the_largest():
    # notebook 04's exercise 3 written with >= for >: the learning rates first go wrong at
    # index 4 (a division one epoch early); the largest relative error is at index 8
    expected = torch.tensor([1e-2] * 5 + [1e-3] * 4 + [1e-4] * 2)
    got = torch.tensor([1e-2] * 4 + [1e-3] * 4 + [1e-4] * 3)
    message = failure(check_close, "learning rate per epoch", got, expected, tol=1e-9)
    assert "2 of 11 values are off" in message
    assert "the first at index (4,): got 0.001, expected 0.01" in message
    assert "the largest at index (8,): got 0.0001, expected 0.001" in message
    one = failure(check_close, "x", torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0]))
    assert "the first and largest at index (1,): got 2, expected 3" in one


def test_check_equal_rejects_a_float_where_a_whole_number_is_expected(capsys):
    # notebook 01, exercise 1 written with / instead of //: (27 + 4 - 5) / 1 + 1 == 27.0
    message = failure(check_equal, "conv2 output size", (27 + 2 * 2 - 5) / 1 + 1, 27)
    assert message.startswith("conv2 output size: expected the whole number 27, got the float "
                              "27.0: use integer arithmetic (// for a division that floors")
    assert "the float 1800.0" in failure(check_equal, "views", torch.tensor(1800.0), 1800)
    assert "the float 6.0" in failure(check_equal, "n", np.float64(6.0), 6)
    assert "at index 1" in failure(check_equal, "sides", [55, 27.0], [55, 27])
    check_equal("conv2 output size", np.int64(27), 27)     # any integer type is a whole number
    check_equal("a float answer", 0.5, 0.5)
    check_equal("a flag", True, True)
    assert capsys.readouterr().out.count("\u2714") == 3


def test_checks_name_common_mistakes():
    # check_equal: an answer equal to a listed mistake says which mistake it is
    assert failure(check_equal, "conv2 output size", 23, 27,
                   mistakes={"the size without padding": 23}) == (
        "conv2 output size: expected 27, got 23 - that is the size without padding")
    # check_close: population (n) vs sample (n - 1) standard deviation of many values are
    # within 1e-5 of each other, so a loose tolerance alone passes both
    x = torch.rand(3, 20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    population, sample = x.std(1, correction=0), x.std(1)
    mistakes = {"the sample standard deviation (divides by n - 1)": sample}
    check_close("std", population, population, tol=1e-4, mistakes=mistakes)
    check_close("std without the mistakes named", sample, population, tol=1e-4)
    message = failure(check_close, "std", sample, population, tol=1e-4, mistakes=mistakes)
    assert message.startswith("std: this is the sample standard deviation (divides by n - 1)")
    # a failing answer that is a known mistake: LRN's alpha times n for alpha / n, precision for
    # recall, variance for mean square
    message = failure(check_close, "factor", torch.tensor(0.1136), torch.tensor(1 / 6), tol=0.1,
                      mistakes={"the ratio of variances, not of mean squares": 0.1136})
    assert message.startswith("factor: this is the ratio of variances, not of mean squares")
    # a wrong answer that is no listed mistake keeps the plain message
    assert "relative error" in failure(check_close, "factor", 0.3, 1 / 6, tol=0.1,
                                       mistakes={"the ratio of variances": 0.1136})
