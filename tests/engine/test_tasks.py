from __future__ import annotations

import random

import pytest
import torch

from anil_engine.config import TaskSpec
from anil_engine.datasets.base import ImageTensorDataset
from anil_engine.errors import ConfigError
from anil_engine.tasks import EpisodeSampler, support_query_masks


def make_data(n_classes=10, per_class=8):
    images = torch.arange(n_classes * per_class, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    return ImageTensorDataset(images, labels, [f"c{i}" for i in range(n_classes)])


@pytest.mark.parametrize("ways,shots,query", [(5, 1, 1), (3, 2, 5), (10, 3, 3)])
def test_task_has_ways_classes_and_shots(ways, shots, query):
    data = make_data()
    x, y = EpisodeSampler(data, TaskSpec(ways, shots, query), seed=0).sample()
    assert x.shape == (ways * (shots + query), 1, 4, 4)
    assert torch.equal(y, torch.arange(ways).repeat_interleave(shots + query))
    # Every image of a remapped class comes from one original class.
    original = data.labels[x[:, 0, 0, 0].long()]
    for c in range(ways):
        assert original[y == c].unique().numel() == 1
    assert original.unique().numel() == ways


def test_seeded_sampler_is_reproducible_and_leaves_global_random_alone():
    data = make_data()
    random.seed(5)
    before = random.random()
    random.seed(5)
    a = [EpisodeSampler(data, TaskSpec(5, 1, 1), seed=3).sample()[0] for _ in range(1)]
    assert random.random() == before
    b = EpisodeSampler(data, TaskSpec(5, 1, 1), seed=3).sample()[0]
    c = EpisodeSampler(data, TaskSpec(5, 1, 1), seed=4).sample()[0]
    assert torch.equal(a[0], b) and not torch.equal(b, c)


def test_sampler_state_resumes_the_sequence():
    data = make_data()
    s = EpisodeSampler(data, TaskSpec(5, 1, 1), seed=1)
    s.sample()
    state = s.state()
    expected = [s.sample()[0] for _ in range(3)]
    t = EpisodeSampler(data, TaskSpec(5, 1, 1), seed=99)
    t.set_state(state)
    assert all(torch.equal(e, t.sample()[0]) for e in expected)


def test_too_few_images_is_a_clear_error():
    with pytest.raises(ConfigError, match="need 5 classes with >= 9 images"):
        EpisodeSampler(make_data(per_class=8), TaskSpec(5, 4, 5), seed=0)


def test_even_odd_split_when_query_equals_shots():
    labels = torch.arange(3).repeat_interleave(4)
    support, query = support_query_masks(labels, 2, 2)
    assert support.tolist() == [True, False] * 6 and torch.equal(query, ~support)


@pytest.mark.parametrize("shots,query", [(1, 5), (5, 1), (3, 3), (2, 7)])
def test_split_counts(shots, query):
    labels = torch.arange(4).repeat_interleave(shots + query)
    support, query_mask = support_query_masks(labels, shots, query)
    for c in range(4):
        assert int(support[labels == c].sum()) == shots and int(query_mask[labels == c].sum()) == query
