"""Image observations: the CNN is chosen for image-shaped Boxes, reads them right, learns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import UNSCALED
from torch import nn

import pgrad
from pgrad.encoders import ImageEncoder, ObservationEncoder
from pgrad.policies import make_policy

DISCRETE = gym.spaces.Discrete(2)


def uint8_box(shape: tuple[int, ...]) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)


def convolutions(policy: pgrad.Policy) -> list[nn.Conv2d]:
    return [m for m in policy.backbone.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize(("shape", "channels_last"), [((3, 64, 64), False), ((84, 84, 4), True)])
def test_cnn_for_uint8_images(shape: tuple[int, ...], channels_last: bool) -> None:
    policy = make_policy(uint8_box(shape), DISCRETE, hidden_sizes=(16,))
    assert isinstance(policy.encoder, ImageEncoder)
    assert policy.encoder.layout.channels_last is channels_last
    convs = convolutions(policy)
    # The Nature-DQN stack: 32×8×8 s4, 64×4×4 s2, 64×3×3 s1, then a linear layer to 512.
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    assert convs[0].in_channels == min(shape[0], shape[-1])
    obs = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    assert policy.sample(obs).shape == (2,)
    assert policy.value(obs).shape == (2,)


def test_mlp_for_flat_and_small_observations() -> None:
    for space in (gym.spaces.Box(-1.0, 1.0, shape=(8,)), uint8_box((4, 4, 3)),
                  gym.spaces.Box(-1.0, 1.0, shape=(16, 16, 3))):  # not in [0, 1]: no image
        policy = make_policy(space, DISCRETE, hidden_sizes=(16,))
        assert isinstance(policy.encoder, ObservationEncoder), space
        assert not convolutions(policy)


def test_minatar_bool_grids_get_the_small_cnn() -> None:
    """MinAtar's observations: Box(False, True, (10, 10, C), bool); the Nature kernels do not
    fit 10 × 10, so 'auto' takes the small stack."""
    space = gym.spaces.Box(0, 1, shape=(10, 10, 6), dtype=np.bool_)
    policy = make_policy(space, gym.spaces.Discrete(6), hidden_sizes=(16,))
    assert isinstance(policy.encoder, ImageEncoder)
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convolutions(policy)] == [
        (6, 16, (3, 3))]
    obs = torch.as_tensor(np.stack([space.sample() for _ in range(3)]))
    assert policy.sample(obs).shape == (3,)
    with pytest.raises(pgrad.PgradError, match="too small for the 'nature' CNN"):
        make_policy(space, DISCRETE, cnn_arch="nature")


def test_images_are_scaled_and_moved_channels_first() -> None:
    hwc = make_policy(uint8_box((12, 10, 3)), DISCRETE, hidden_sizes=(8,))
    chw = make_policy(uint8_box((12, 10, 9)), DISCRETE, hidden_sizes=(8,), channel_order="chw")
    obs = torch.zeros(1, 12, 10, 3, dtype=torch.uint8)
    obs[0, 4, 7, 2] = 255
    obs[0, 1, 2, 0] = 51
    x = hwc.preprocess(obs)
    assert x.shape == (1, 3, 12, 10) and x.dtype == torch.float32
    assert x[0, 2, 4, 7] == 1.0 and x[0, 0, 1, 2] == pytest.approx(0.2)
    assert x.sum().item() == pytest.approx(1.2)
    assert chw.preprocess(torch.zeros(1, 12, 10, 9)).shape == (1, 12, 10, 9)  # as told
    assert isinstance(chw.encoder, ImageEncoder) and not chw.encoder.layout.channels_last


def test_encoder_option_forces_a_choice() -> None:
    image = uint8_box((3, 64, 64))
    assert isinstance(make_policy(image, DISCRETE, encoder="mlp").encoder, ObservationEncoder)
    forced = make_policy(gym.spaces.Box(-5.0, 5.0, shape=(2, 9, 9)), DISCRETE, encoder="cnn")
    assert isinstance(forced.encoder, ImageEncoder) and convolutions(forced)
    with pytest.raises(pgrad.PgradError, match="encoder 'cnn' needs an image"):
        make_policy(gym.spaces.Box(-1.0, 1.0, shape=(8,)), DISCRETE, encoder="cnn")
    with pytest.raises(pgrad.PgradError, match="encoder must be one of"):
        pgrad.Config(encoder="resnet")


def test_images_inside_dict_observations_are_refused_in_one_line() -> None:
    space = gym.spaces.Dict({"camera": uint8_box((3, 64, 64)),
                             "speed": gym.spaces.Box(-1.0, 1.0, shape=(2,))})
    with pytest.raises(pgrad.PgradError, match="not supported yet") as info:
        make_policy(space, DISCRETE)
    message = str(info.value)
    assert "\n" not in message and "'camera'" in message and "encoder 'mlp'" in message
    flat = make_policy(space, DISCRETE, encoder="mlp")  # flattened anyway, as asked
    assert flat.obs_dim == 3 * 64 * 64 + 2


class BrightPixelBandit(gym.Env):
    """One step: a 10 × 10 uint8 image, black but for one bright pixel; the rewarded action
    is 0 when the pixel is in the left half and 1 when it is in the right half."""

    observation_space = gym.spaces.Box(0, 255, shape=(10, 10, 1), dtype=np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.row, self.column = self.np_random.integers(0, 10, size=2)
        return image(int(self.row), int(self.column)), {}

    def step(self, action):
        reward = float(int(action) == int(self.column >= 5))
        return image(int(self.row), int(self.column)), reward, True, False, {}


def image(row: int, column: int) -> np.ndarray:
    obs = np.zeros((10, 10, 1), dtype=np.uint8)
    obs[row, column, 0] = 255
    return obs


@pytest.mark.slow
def test_cnn_policy_learns_a_tiny_image_task() -> None:
    """100 updates of 16 one-step episodes (about 2 s); the untrained policy is right on
    about half of the 100 states."""
    agent = pgrad.Reinforce(BrightPixelBandit, seed=0, num_envs=16, batch_episodes=16,
                            hidden_sizes=(32,), value_net="shared", diagnostics_every=0,
                            vectorization="sync", **UNSCALED)
    assert isinstance(agent.policy.encoder, ImageEncoder) and convolutions(agent.policy)
    agent.learn(16 * 100, tensorboard=False)
    assert agent.num_updates == 100
    states = [(row, column) for row in range(10) for column in range(10)]
    obs = torch.as_tensor(np.stack([image(*s) for s in states]))
    with torch.no_grad():
        greedy = agent.policy.deterministic_action(obs).numpy()
    rewarded = np.array([int(column >= 5) for _, column in states])
    correct = np.mean(greedy == rewarded)
    assert correct >= 0.9
