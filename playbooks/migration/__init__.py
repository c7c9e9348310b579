"""The migration plane: moves a department system from its legacy IDC onto the cloud.

`lifecycle` is the state machine (pure), `record` persists one YAML file per system,
`plan` orders systems into waves, `source` discovers and prechecks a source database,
`runner` runs the Ansible steps of `playbooks/migrate.yml`, `cli` is `tricenter migrate`.
"""
