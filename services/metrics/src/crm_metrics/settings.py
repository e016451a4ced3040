"""Configuration of the metrics service (environment variables, validated at start-up)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from crm_metrics.domain.catalog import Definitions
from crm_metrics.domain.clocks import DEFAULT_EXPECTATIONS, Settings
from crm_platform.settings import ServiceSettings

TOPICS = ("crm.contacts.v1", "crm.servicedesk.v1")


class MetricsSettings(ServiceSettings):
    """Everything in :class:`ServiceSettings`, plus the metrics service's own settings."""

    service_name: str = "metrics"
    metrics_topics: str = Field(
        default=",".join(TOPICS), min_length=1, description="comma-separated topics to consume"
    )
    consumer_group: str = Field(default="crm-metrics", min_length=1)
    namespace: str = Field(
        default="live",
        pattern=r"^[a-z0-9_-]{1,64}$",
        description="the state this process computes ('live', or a replay's namespace)",
    )
    definitions: str = Field(
        default="", description="definition versions, e.g. 'frt_wall@2,frt_business@2'"
    )
    checkpoint_interval_seconds: float = Field(default=0.2, gt=0, le=60)
    view_refresh_seconds: float = Field(default=0.2, gt=0, le=60)
    calendar_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="while tickets wait for a calendar version, how often to look for it in "
        "the database (another process's partition may have stored it)",
    )
    cell_snapshot_min_cells: int = Field(
        default=200_000,
        ge=1,
        description="snapshot a partition's cells once its log holds this many (and more than "
        "the cells themselves)",
    )
    reporting_timezone: str = Field(default="UTC", description="time zone of day buckets")
    own_brands: str = Field(default="", description="comma-separated brands that are 'us'")
    social_expected_wait_seconds: float = Field(
        default=DEFAULT_EXPECTATIONS["social"], gt=0, le=12 * 3600
    )

    @field_validator("reporting_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("definitions")
    @classmethod
    def _known_definitions(cls, value: str) -> str:
        Definitions.parse([item.strip() for item in value.split(",") if item.strip()])
        return value

    @property
    def topics(self) -> list[str]:
        """The topics to consume."""
        return [topic.strip() for topic in self.metrics_topics.split(",") if topic.strip()]

    def kpi_settings(self) -> Settings:
        """What the KPI derivation needs."""
        definitions = Definitions.parse(
            [item.strip() for item in self.definitions.split(",") if item.strip()]
        )
        expectations = dict(DEFAULT_EXPECTATIONS)
        expectations["social"] = self.social_expected_wait_seconds
        return Settings(
            definitions=definitions,
            reporting_timezone=self.reporting_timezone,
            expectations=expectations,
            own_brands=frozenset(b.strip() for b in self.own_brands.split(",") if b.strip()),
        )
