"""Feature switches flipped by another process take effect at once."""

import waffle
from waffle.models import Switch

from coordination.services.flow import gate_required


def test_a_switch_flipped_behind_the_cache_is_seen_immediately(db):
    Switch.objects.update_or_create(name="coordination_paused", defaults={"active": False})
    assert not waffle.switch_is_active("coordination_paused")
    # A raw UPDATE, as another process's admin save looks from here: no signal, no cache hook.
    Switch.objects.filter(name="coordination_paused").update(active=True)
    assert waffle.switch_is_active("coordination_paused")


def test_deploy_gate_follows_its_switch(db):
    Switch.objects.update_or_create(name="require_deploy_approval", defaults={"active": False})
    assert not gate_required("deploy_approval")
    Switch.objects.filter(name="require_deploy_approval").update(active=True)
    assert gate_required("deploy_approval")
    assert not gate_required("")
