"""USE multilingual embeddings: 512-d, unit length, and similarities that make sense across EN/JA."""

from __future__ import annotations

import numpy as np
import pytest

from processors.adapters.embedders import UseEmbedder, shared_use_embedder


@pytest.fixture(scope="module")
def embedder():
    return UseEmbedder()


def test_vectors_are_512_d_and_unit_length(embedder):
    vectors = np.array(embedder.embed(["order page returns 500", "注文ページで500エラー", "x"]))
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_same_meaning_across_languages_is_closer_than_a_different_topic(embedder):
    ja, en, weather = np.array(
        embedder.embed(["注文ページで500エラーが出ます", "I get a 500 error on the order page", "今日はいい天気ですね"])
    )
    assert ja @ en > ja @ weather + 0.1


def test_truncated_dimension_is_renormalised(embedder):
    small = UseEmbedder(dimension=256)
    full = np.array(embedder.embed(["payment failed"]))[0]
    short = np.array(small.embed(["payment failed"]))[0]
    assert short.shape == (256,)
    assert np.linalg.norm(short) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(short, full[:256] / np.linalg.norm(full[:256]), atol=1e-5)


def test_bad_input_is_an_error_not_a_silent_drop(embedder):
    with pytest.raises(TypeError, match="sequence of strings"):
        embedder.embed("one string")
    with pytest.raises(TypeError, match=r"items \[1\]"):
        embedder.embed(["ok", None])
    assert embedder.embed([]) == []


def test_shared_embedder_is_one_per_dimension():
    assert shared_use_embedder(256) is shared_use_embedder(256)
    assert shared_use_embedder(256) is not shared_use_embedder(512)
    assert shared_use_embedder(512).dimension == 512
    with pytest.raises(ValueError, match="1..512"):
        shared_use_embedder(1024)
