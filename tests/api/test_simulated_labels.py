"""An agent is labelled simulated whenever its work is scripted: the scripted runtime, or a command agent
configured as a scripted stand-in ("simulated": true)."""

import pytest

from coordination.services import MemberSpec, team_spawn


@pytest.mark.django_db
def test_command_agents_configured_as_simulated_are_served_as_simulated(operator_client, workspace):
    session = team_spawn(
        name="Labels",
        goal="",
        workspace=str(workspace),
        members=[
            MemberSpec(role="developer", runtime="command", runtime_config={"argv": ["true"], "simulated": True}),
            MemberSpec(role="tester", runtime="command", runtime_config={"argv": ["true"]}),
            MemberSpec(role="reviewer", runtime="scripted", runtime_config={"duration_s": 0}),
        ],
    )

    response = operator_client.get("/api/agents", {"session": session.pk})

    assert response.status_code == 200
    labels = {agent["role"]: agent["simulated"] for agent in response.json()["results"]}
    assert labels == {"developer": True, "tester": False, "reviewer": True}
