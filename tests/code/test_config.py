from datetime import date

import pytest

from jobs.config import DEFAULTS, REPO_ROOT, Settings, load_settings, settings_table


def test_defaults_work_on_a_laptop():
    s = load_settings({})
    assert s.storage.data_dir == REPO_ROOT / "data"
    assert (
        s.storage.landing_dir == s.storage.data_dir / "landing"
        and s.storage.lakehouse_dir == s.storage.data_dir / "lakehouse"
    )
    assert s.spark.master == "local[*]"
    assert s.data.label_maturity_days == 7
    assert s.mlflow_tracking_uri == f"sqlite:///{s.storage.data_dir / 'mlflow' / 'mlflow.db'}"


def test_environment_overrides_and_types(tmp_path):
    s = load_settings(
        {
            "PIPELINE_DATA_DIR": str(tmp_path),
            "PIPELINE_LABEL_MATURITY_DAYS": "3",
            "SPARK_MASTER": "spark://h:7077",
            "PIPELINE_START_DATE": "2025-02-03",
            "PIPELINE_CATCHUP": "yes",
        }
    )
    assert s.storage.data_dir == tmp_path and s.data.label_maturity_days == 3 and s.spark.master == "spark://h:7077"
    assert s.airflow.start_date == date(2025, 2, 3) and s.airflow.catchup is True


def test_bad_value_names_the_variable():
    with pytest.raises(ValueError, match="PIPELINE_LABEL_MATURITY_DAYS"):
        load_settings({"PIPELINE_LABEL_MATURITY_DAYS": "seven"})


def test_every_setting_has_a_default_and_the_readme_carries_the_generated_table():
    readme = (REPO_ROOT / "README.md").read_text()
    table = settings_table()
    for name in DEFAULTS:
        assert f"`{name}`" in table
    assert table in readme, (
        "the README's configuration table is stale: paste the output of `python -c 'from jobs.config import settings_table; print(settings_table())'`"
    )


def test_landing_file_prefers_csv_and_accepts_jsonl(tmp_path):
    s = load_settings({"PIPELINE_DATA_DIR": str(tmp_path)})
    d = date(2026, 3, 1)
    assert s.storage.landing_file("transactions", d) is None
    (s.storage.landing_dir / "transactions").mkdir(parents=True)
    (s.storage.landing_dir / "transactions" / "2026-03-01.jsonl").write_text("")
    assert s.storage.landing_file("transactions", d).suffix == ".jsonl"
    (s.storage.landing_dir / "transactions" / "2026-03-01.csv").write_text("")
    assert s.storage.landing_file("transactions", d).suffix == ".csv"


def test_missing_jars_give_one_line_error_naming_the_fix(tmp_path):
    from jobs.platform.spark import SparkJarsMissing, delta_jars

    s = load_settings({"PIPELINE_SPARK_JARS_DIR": str(tmp_path / "nowhere")})
    with pytest.raises(SparkJarsMissing) as err:
        delta_jars(s)
    assert "make setup" in str(err.value) and "\n" not in str(err.value)


def test_settings_are_grouped_by_concern():
    s = load_settings({"PIPELINE_GAP_DAYS": "9", "PIPELINE_MIN_AUC": "0.9", "DBT_SPARK_PORT": "10001"})
    assert (s.training.gap_days, s.gate.min_auc, s.dbt.spark_port) == (9, 0.9, 10001)
    table = settings_table()
    # one heading row per group, each variable once, in the group it belongs to
    assert table.count("| **`settings.") == len(Settings.__dataclass_fields__)
    assert (
        table.index("**`settings.training`**") < table.index("`PIPELINE_GAP_DAYS`") < table.index("**`settings.gate`**")
    )


def test_a_gap_shorter_than_the_label_maturity_is_refused_naming_both_variables():
    with pytest.raises(ValueError, match=r"PIPELINE_GAP_DAYS=3 is shorter than PIPELINE_LABEL_MATURITY_DAYS=7"):
        load_settings({"PIPELINE_GAP_DAYS": "3"})
    assert load_settings({"PIPELINE_GAP_DAYS": "3", "PIPELINE_LABEL_MATURITY_DAYS": "3"}).training.gap_days == 3
    # the rule holds for copies too
    with pytest.raises(ValueError, match="PIPELINE_GAP_DAYS"):
        load_settings({}).override(data={"label_maturity_days": 8})


@pytest.mark.parametrize(
    "env, match",
    [
        ({"PIPELINE_TEST_DAYS": "0"}, r"PIPELINE_TEST_DAYS='0': must be at least 1"),
        ({"PIPELINE_MIN_AUC": "1.5"}, r"PIPELINE_MIN_AUC='1.5': must be at most 1"),
        ({"DBT_SPARK_PORT": "70000"}, r"DBT_SPARK_PORT='70000': must be at most 65535"),
        ({"DBT_TARGET": "prod"}, r"DBT_TARGET='prod': expected `local` or `thrift`"),
        ({"PIPELINE_CATCHUP": "maybe"}, r"PIPELINE_CATCHUP='maybe'"),
        ({"PIPELINE_SPARK_CONF": "spark.a=1 codegen=off"}, r"PIPELINE_SPARK_CONF: 'codegen=off' is not a spark"),
        (
            {"PIPELINE_SENSOR_POKE_INTERVAL_S": "600", "PIPELINE_SENSOR_TIMEOUT_S": "60"},
            r"PIPELINE_SENSOR_POKE_INTERVAL_S=600 .* PIPELINE_SENSOR_TIMEOUT_S=60",
        ),
    ],
)
def test_invalid_values_are_refused_at_load_with_the_variable_named(env, match):
    with pytest.raises(ValueError, match=match):
        load_settings(env)


def test_dbt_profile_variables_come_from_the_settings():
    from jobs.platform.dbt_runner import dbt_env

    profile = (REPO_ROOT / "dbt_project" / "profiles.yml").read_text() + (
        REPO_ROOT / "dbt_project" / "dbt_project.yml"
    ).read_text()
    import re

    read = set(re.findall(r"env_var\('([A-Z_]+)'", profile))
    s = load_settings(
        {"DBT_TARGET": "thrift", "DBT_SPARK_HOST": "spark-thrift", "DBT_SPARK_PORT": "10001", "DBT_THREADS": "3"}
    )
    exported = dbt_env(s)
    assert read <= set(exported), read - set(exported)  # every variable the profile reads is exported
    assert (
        exported["DBT_TARGET"],
        exported["DBT_SPARK_HOST"],
        exported["DBT_SPARK_PORT"],
        exported["DBT_THREADS"],
    ) == ("thrift", "spark-thrift", "10001", "3")
    assert {"DBT_TARGET", "DBT_THREADS", "DBT_SPARK_HOST", "DBT_SPARK_PORT", "PIPELINE_LABEL_MATURITY_DAYS"} <= set(
        DEFAULTS
    )


def test_extra_spark_properties_reach_the_session_and_dbt_over_the_projects_own():
    from jobs.platform.dbt_runner import dbt_env
    from jobs.platform.spark import spark_conf

    s = load_settings(
        {"PIPELINE_SPARK_CONF": "spark.sql.codegen.factoryMode=NO_CODEGEN  spark.sql.shuffle.partitions=7"}
    )
    conf = spark_conf(s)
    assert conf["spark.sql.codegen.factoryMode"] == "NO_CODEGEN" and conf["spark.sql.shuffle.partitions"] == "7"
    import json

    assert json.loads(dbt_env(s)["PIPELINE_DBT_SPARK_CONF"]) == conf
    assert "spark.sql.codegen.factoryMode" not in spark_conf(load_settings({}))
