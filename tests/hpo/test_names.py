"""Where searches live: --storage URIs keep their form, and --resume without --name finds the
newest search of a space in whichever storage the search would use."""

import os

from gan_search.hpo.driver.paths import latest_search, storage_root


def test_a_storage_uri_is_kept_as_a_uri():
    # Path("s3://b/x") would print s3:/b/x, a different (local) place
    assert storage_root("runs", "s3://bucket/gan/") == "s3://bucket/gan"
    assert storage_root("runs", "gs://b/x") == "gs://b/x"
    assert storage_root("/tmp/r", None) == "/tmp/r/tune"


def test_resume_without_a_name_finds_the_newest_search_in_a_folder_or_a_uri(tmp_path):
    shared = tmp_path / "shared"
    for age, name in ((300, "digits-old"), (100, "digits-new"), (0, "cats-newest")):
        (shared / name).mkdir(parents=True)
        os.utime(shared / name, (1_700_000_000 - age,) * 2)
    (shared / "digits-not-a-folder").write_text("")
    assert latest_search(str(tmp_path / "runs"), "digits", str(shared)) == "digits-new"
    # the same storage named as a URI goes through pyarrow's filesystem, as s3:// would
    assert latest_search(str(tmp_path / "runs"), "digits", shared.as_uri()) == "digits-new"
    assert latest_search(str(tmp_path / "runs"), "mnist", shared.as_uri()) is None
    assert latest_search(str(tmp_path / "runs"), "digits") is None  # not in <runs-dir>/tune
