"""Ingest a stratified ~700-image subset of the real FER2013 (skipped when it is absent)."""

import fiftyone as fo
import pytest

from fercurate import dataset, schema
from fercurate.sources import read_source
from tests.subsets import stratified_fer2013

pytestmark = pytest.mark.integration


def test_real_fer2013_subset_ingests_with_exact_counts(shared_fer2013, tmp_path, unique_name):
    expected = stratified_fer2013(shared_fer2013, tmp_path / "fer2013")
    assert sum(sum(c.values()) for c in expected.values()) == 700
    report = dataset.ingest(read_source(tmp_path / "fer2013"), unique_name)
    assert report.samples == 700 and not report.skipped
    ds = fo.load_dataset(unique_name)
    assert dataset.counts(ds) == expected
    # real FER2013 faces: 48x48 single-channel JPEGs
    assert set(ds.values("metadata.width")) == {48} and set(ds.values("metadata.num_channels")) == {1}
    assert set(ds.values(schema.USAGE)) == {"Training", "PublicTest", "PrivateTest"}
    assert not dataset.ingest(read_source(tmp_path / "fer2013"), unique_name).diff
