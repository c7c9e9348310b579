"""Credentials of the providers that act inside a department's project.

With `cloud=` set, the OpenStack provider takes the project from clouds.yaml and ignores
`tenant_id`: a provider built that way would create every department's resources in the
operator's own project, outside the department's quotas. A scoped provider is therefore
given explicit password credentials (read once from the clouds.yaml entry through
openstacksdk) and the department's project id, and never `cloud`. An application
credential cannot do this: it is bound to the project it was made in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

PASSWORD_AUTH_TYPES = (None, "password", "v3password")


class CredentialsError(ValueError):
    """The clouds.yaml entry cannot act inside other projects."""


@dataclass(frozen=True, repr=False)  # no password in tracebacks
class ScopedAuth:
    auth_url: str
    user_name: str
    password: str
    user_domain_name: str
    project_domain_name: str
    cacert_file: str | None = None
    insecure: bool | None = None

    def provider_args(self, project_id: pulumi.Input[str]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "auth_url": self.auth_url, "user_name": self.user_name,
            "password": pulumi.Output.secret(self.password),
            "user_domain_name": self.user_domain_name,
            "project_domain_name": self.project_domain_name, "tenant_id": project_id}
        if self.cacert_file:
            args["cacert_file"] = self.cacert_file
        if self.insecure is not None:
            args["insecure"] = self.insecure
        return args


PLAN_AUTH = ScopedAuth(auth_url="https://keystone.plan.invalid:5000/v3", user_name="planner",
                       password="plan-only", user_domain_name="Default",
                       project_domain_name="Default")


def scoped_auth(os_cloud: str, planning: bool, loader: Any = None) -> ScopedAuth:
    """Credentials of clouds.yaml entry `os_cloud`, for providers scoped to other projects."""
    if planning:
        return PLAN_AUTH
    if loader is None:
        import openstack.config

        loader = openstack.config.OpenStackConfig()
    from openstack import exceptions

    try:
        cloud = loader.get_one(cloud=os_cloud)
    except exceptions.ConfigException as exc:
        raise CredentialsError(f"clouds.yaml: {exc} (tricenter:osCloud names the entry; "
                               "OS_CLIENT_CONFIG_FILE or ~/.config/openstack/clouds.yaml "
                               "holds it)") from None
    config, auth = cloud.config, cloud.config.get("auth", {})
    auth_type = config.get("auth_type")
    if auth_type not in PASSWORD_AUTH_TYPES or not auth.get("password"):
        raise CredentialsError(
            f"clouds.yaml entry '{os_cloud}' uses {auth_type or 'no password'} authentication: "
            "department projects need a user with a password (an application credential is "
            "bound to its own project); give that entry username, password and user_domain_name")
    return ScopedAuth(
        auth_url=auth["auth_url"], user_name=auth["username"],
        password=auth["password"],
        user_domain_name=auth.get("user_domain_name") or "Default",
        project_domain_name=auth.get("project_domain_name") or "Default",
        cacert_file=config.get("cacert"),
        insecure=(not config["verify"]) if "verify" in config else None)
