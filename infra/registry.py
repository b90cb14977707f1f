"""The Artifact Registry repository the gateway's image is pushed to."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import GatewayConfig
from infra.names import ResourceNames


class ImageRegistry(pulumi.ComponentResource):
    """A Docker repository in the region; it exists before any image does."""

    def __init__(
        self,
        name: str,
        config: GatewayConfig,
        depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("wcg:gateway:ImageRegistry", name, None, opts)
        names = ResourceNames(config.name_prefix)
        self.repository = gcp.artifactregistry.Repository(
            "images",
            project=config.project,
            location=config.region,
            repository_id=names.repository,
            format="DOCKER",
            description="Images of the WeChat component gateway",
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
        # What `docker push` and the `image` config key start with.
        self.url: pulumi.Output[str] = pulumi.Output.concat(
            self.repository.location,
            "-docker.pkg.dev/",
            self.repository.project,
            "/",
            self.repository.repository_id,
        )
        self.register_outputs({"url": self.url})
