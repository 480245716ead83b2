from datetime import date
from pathlib import Path

import pytest

from jobs.config import DEFAULTS, REPO_ROOT, Settings, load_settings, settings_table


def test_defaults_work_on_a_laptop():
    s = load_settings({})
    assert s.data_dir == REPO_ROOT / "data"
    assert s.landing_dir == s.data_dir / "landing" and s.lakehouse_dir == s.data_dir / "lakehouse"
    assert s.spark_master == "local[*]"
    assert s.label_maturity_days == 7
    assert s.resolved_mlflow_tracking_uri == f"sqlite:///{s.data_dir / 'mlflow' / 'mlflow.db'}"


def test_environment_overrides_and_types(tmp_path):
    s = load_settings({"PIPELINE_DATA_DIR": str(tmp_path), "PIPELINE_LABEL_MATURITY_DAYS": "3",
                       "SPARK_MASTER": "spark://h:7077", "PIPELINE_START_DATE": "2025-02-03", "PIPELINE_CATCHUP": "yes"})
    assert s.data_dir == tmp_path and s.label_maturity_days == 3 and s.spark_master == "spark://h:7077"
    assert s.start_date == date(2025, 2, 3) and s.catchup is True


def test_bad_value_names_the_variable():
    with pytest.raises(ValueError, match="PIPELINE_LABEL_MATURITY_DAYS"):
        load_settings({"PIPELINE_LABEL_MATURITY_DAYS": "seven"})


def test_every_setting_has_a_default_and_is_documented_in_readme():
    readme = (REPO_ROOT / "README.md").read_text()
    table = settings_table()
    for name in DEFAULTS:
        assert f"`{name}`" in table
        assert f"`{name}`" in readme, f"{name} missing from the README configuration table"


def test_landing_file_prefers_csv_and_accepts_jsonl(tmp_path):
    s = load_settings({"PIPELINE_DATA_DIR": str(tmp_path)})
    d = date(2026, 3, 1)
    assert s.landing_file("transactions", d) is None
    (s.landing_dir / "transactions").mkdir(parents=True)
    (s.landing_dir / "transactions" / "2026-03-01.jsonl").write_text("")
    assert s.landing_file("transactions", d).suffix == ".jsonl"
    (s.landing_dir / "transactions" / "2026-03-01.csv").write_text("")
    assert s.landing_file("transactions", d).suffix == ".csv"


def test_missing_jars_give_one_line_error_naming_the_fix(tmp_path):
    from jobs.spark import SparkJarsMissing, delta_jars

    s = load_settings({"PIPELINE_SPARK_JARS_DIR": str(tmp_path / "nowhere")})
    with pytest.raises(SparkJarsMissing) as err:
        delta_jars(s)
    assert "make setup" in str(err.value) and "\n" not in str(err.value)
