import pytest
import torch

from foley.quantize.stacking import stack_levels, unstack_levels
from foley.util.shapes import stacked_shape


@pytest.mark.parametrize("mode", ["freq", "interleave", "time"])
@pytest.mark.parametrize("levels, height, width", [(1, 20, 86), (4, 10, 43), (4, 5, 86), (4, 20, 22), (3, 2, 5)])
def test_stacking_round_trips_exactly(mode, levels, height, width):
    codes = torch.randint(0, 512, (2, levels, height, width))
    stacked = stack_levels(codes, mode)
    assert stacked.shape == ((2, width, levels * height) if mode == "time" else (2, levels * height, width))
    assert stacked.shape[1:] == stacked_shape((height, width), levels, mode)
    assert torch.equal(unstack_levels(stacked, levels, mode), codes)


def test_layouts():
    codes = torch.arange(2 * 3 * 4).view(1, 2, 3, 4)  # 2 levels of 3 x 4
    freq = stack_levels(codes, "freq")[0]
    assert torch.equal(freq[:3], codes[0, 0]) and torch.equal(freq[3:], codes[0, 1])
    interleaved = stack_levels(codes, "interleave")[0]
    for row in range(3):
        for level in range(2):
            assert torch.equal(interleaved[row * 2 + level], codes[0, level, row])
    by_time = stack_levels(codes, "time")[0]  # row t: time step t, the frequency codes of level 0 then 1
    for t in range(4):
        assert by_time[t].tolist() == codes[0, 0, :, t].tolist() + codes[0, 1, :, t].tolist()


def test_bad_arguments():
    with pytest.raises(ValueError, match="freq, interleave, time"):
        stack_levels(torch.zeros(1, 2, 3, 4, dtype=torch.long), "diagonal")
    with pytest.raises(ValueError, match="cannot hold 4 levels"):
        unstack_levels(torch.zeros(1, 6, 4, dtype=torch.long), 4, "freq")
