import logging
from datetime import timedelta

import pytest

from mspbyte_dagster.settings import Settings, SettingsError


def test_defaults_follow_the_design_table(tmp_path):
    settings = Settings.from_env({"MSPBYTE_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'app.db'}"
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert settings.redis_url is None and settings.nats_url is None
    assert settings.slow_query_threshold_ms == 100
    assert settings.max_debounce_window_ms == 300_000
    assert settings.max_concurrent_jobs == 5
    assert settings.job_timeout_ms == 600_000
    assert (settings.metrics_port, settings.enable_prometheus) == (9090, True)
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph_consent_redirect_uri is None
    assert settings.flag_defaults["new_pipeline"].enabled and settings.flag_defaults["new_pipeline"].rollout == 100
    assert not settings.flag_defaults["comparison_mode"].enabled
    assert settings.flag_defaults["comparison_mode"].rollout == 0


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://app@db:5432/mspbyte",
            "REDIS_URL": "redis://localhost:6379",
            "NATS_URL": "nats://localhost:4222",
            "FEATURE_UNIFIED_ANALYZER": "false",
            "FEATURE_UNIFIED_ANALYZER_ROLLOUT": "25",
            "SLOW_QUERY_THRESHOLD_MS": "50",
            "MAX_DEBOUNCE_WINDOW_MS": "1000",
            "MAX_CONCURRENT_JOBS": "2",
            "JOB_TIMEOUT_MS": "60000",
            "LOG_LEVEL": "DEBUG",
            "METRICS_PORT": "9191",
            "ENABLE_PROMETHEUS": "0",
            "PROMETHEUS_PUSHGATEWAY_URL": "http://localhost:9091",
            "GRAPH_CLIENT_ID": "app-id",
            "GRAPH_CLIENT_SECRET": "s3cret",
            "GRAPH_AUTHORITY_HOST": "http://127.0.0.1:8080",
            "GRAPH_BASE_URL": "http://127.0.0.1:8080/v1.0",
            "GRAPH_CONSENT_REDIRECT_URI": "https://portal.msp.example/consented",
            "DAGSTER_HOME": "/tmp/somewhere",
        }
    )
    assert settings.database_url == "postgresql://app@db:5432/mspbyte"
    assert settings.flag_defaults["unified_analyzer"].enabled is False
    assert settings.flag_defaults["unified_analyzer"].rollout == 25
    assert settings.slow_query_threshold_ms == 50 and settings.max_debounce_window_ms == 1000
    assert settings.max_concurrent_jobs == 2 and settings.job_timeout_ms == 60000
    assert settings.log_level == "debug" and settings.metrics_port == 9191 and not settings.enable_prometheus
    assert settings.graph_authority_host == "http://127.0.0.1:8080"
    assert settings.graph_consent_redirect_uri == "https://portal.msp.example/consented"
    assert str(settings.dagster_home) == "/tmp/somewhere"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FEATURE_NEW_PIPELINE_ROLLOUT", "abc"),
        ("FEATURE_NEW_PIPELINE_ROLLOUT", "101"),
        ("FEATURE_BATCH_LOADING", "maybe"),
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("SLOW_QUERY_THRESHOLD_MS", "-1"),
        ("METRICS_PORT", "70000"),
        ("LOG_LEVEL", "loud"),
        ("REDIS_URL", "localhost:6379"),
        ("NATS_URL", "http://localhost:4222"),
        ("GRAPH_CONSENT_REDIRECT_URI", "portal.msp.example/consented"),
        ("GRAPH_CONSENT_REDIRECT_URI", "ftp://portal.msp.example/consented"),
        ("MSPBYTE_NAMESPACE", "a.b"),
        ("MSPBYTE_NAMESPACE", "x" * 33),
    ],
)
def test_a_wrong_value_stops_start_up_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_database_url_error_does_not_echo_the_password():
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"DATABASE_URL": "mysql://root:hunter2@localhost/db"})
    assert "hunter2" not in str(error.value)


def test_convex_api_key_is_ignored_with_a_warning_that_never_shows_it(caplog):
    with caplog.at_level(logging.WARNING):
        settings = Settings.from_env({"CONVEX_API_KEY": "prod:very-secret-key"})
    assert settings.convex_api_key_set
    assert "DATABASE_URL" in caplog.text and "CONVEX_API_KEY" in caplog.text
    assert "very-secret-key" not in caplog.text
    assert "very-secret-key" not in repr(settings)


def test_secrets_stay_out_of_repr():
    settings = Settings.from_env(
        {"GRAPH_CLIENT_SECRET": "s3cret-value", "DATABASE_URL": "postgresql://u:pw-value@h/db"}
    )
    assert "s3cret-value" not in repr(settings)
    assert "pw-value" not in repr(settings)


def test_settings_are_read_once_per_process_and_again_only_when_the_environment_changes(monkeypatch, caplog):
    from mspbyte_dagster.settings import current_settings

    monkeypatch.setenv("CONVEX_API_KEY", "ignored-key")
    monkeypatch.setenv("SLOW_QUERY_THRESHOLD_MS", "250")
    caplog.set_level(logging.WARNING)
    first = current_settings()
    assert current_settings() is first
    assert sum("CONVEX_API_KEY" in r.message for r in caplog.records) == 1  # warned once, not per call
    monkeypatch.setenv("SLOW_QUERY_THRESHOLD_MS", "300")
    assert current_settings().slow_query_threshold_ms == 300


def test_pass_options_come_from_the_settings_with_the_callers_choices():
    settings = Settings.from_env({"JOB_TIMEOUT_MS": "90000", "SLOW_QUERY_THRESHOLD_MS": "7", "SNAPSHOT_RETENTION": "3"})
    options = settings.pass_options(run_id="r-1", compare=True)
    assert options.lease_ttl == timedelta(seconds=90) and options.slow_query_threshold_ms == 7
    assert options.retention.snapshots == 3 and options.run_id == "r-1" and options.compare is True


def test_the_graph_secret_is_a_secret_string_and_a_bad_secret_variable_is_named_never_shown():
    settings = Settings.from_env({"GRAPH_CLIENT_SECRET": "s3cret-value"})
    assert settings.graph_client_secret.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in str(settings.graph_client_secret)
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"REDIS_URL": "localhost:6379/pw-value"})
    assert str(error.value).startswith("REDIS_URL must be a URL") and "pw-value" not in str(error.value)


def test_every_wrong_variable_is_named_in_one_error_and_blank_means_unset():
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"METRICS_PORT": "70000", "LOG_LEVEL": "loud", "JOB_TIMEOUT_MS": "10"})
    assert [part.split("=")[0] for part in str(error.value).split("; ")] == [
        "JOB_TIMEOUT_MS",
        "LOG_LEVEL",
        "METRICS_PORT",
    ]
    assert Settings.from_env({"METRICS_PORT": "  ", "NATS_URL": ""}).metrics_port == 9090


def test_an_integrations_variables_come_from_its_registration():
    """Sophos Central declares SOPHOS_* in its package: the settings gain typed fields, checked and hidden alike."""
    from mspbyte_dagster.lib.adapters.registry import INTEGRATIONS
    from mspbyte_dagster.settings import SECRET_VARIABLES, Settings, SettingsError

    declared = {setting.variable for integration in INTEGRATIONS.values() for setting in integration.settings}
    assert {"SOPHOS_CLIENT_ID", "SOPHOS_CLIENT_SECRET", "SOPHOS_AUTH_URL", "SOPHOS_GLOBAL_URL"} <= declared
    assert "SOPHOS_CLIENT_SECRET" in SECRET_VARIABLES
    current = Settings.from_env({"SOPHOS_CLIENT_ID": "app", "SOPHOS_CLIENT_SECRET": "s3cret-x"})
    assert current.sophos_client_id == "app" and current.sophos_global_url == "https://api.central.sophos.com"
    assert current.sophos_client_secret.get_secret_value() == "s3cret-x" and "s3cret-x" not in repr(current)
    with pytest.raises(SettingsError) as wrong:
        Settings.from_env({"SOPHOS_GLOBAL_URL": "api.central.sophos.com", "SOPHOS_CLIENT_SECRET": "s3cret-x"})
    assert "SOPHOS_GLOBAL_URL='api.central.sophos.com' must be a URL" in str(wrong.value)
