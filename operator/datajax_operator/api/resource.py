"""The DataJaxModel object as a whole: apiVersion, kind, metadata, spec, status."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from datajax_operator.api.spec import DNS_SUBDOMAIN, DataJaxModelSpec
from datajax_operator.api.status import DataJaxModelStatus


class ObjectMeta(BaseModel):
    """The part of metav1.ObjectMeta the operator reads; other keys (managedFields, ...) are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class DataJaxModel(BaseModel):
    """A DataJaxModel as stored by the API server or written in a YAML file."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["datajax.dev/v1alpha1"] = Field(default="datajax.dev/v1alpha1", alias="apiVersion")
    kind: Literal["DataJaxModel"] = "DataJaxModel"
    metadata: ObjectMeta
    spec: DataJaxModelSpec
    status: DataJaxModelStatus | None = None
