"""JSON API of deliveries: a workflow's diff and verification runs, a session's merge queue (reads)."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from coordination.delivery_reads import merge_queue, verification_runs, workflow_diff
from coordination.models import Session, VerificationRun, Workflow

from .common import errors
from .pagination import HivePagination


def _get(queryset, pk: str):
    """The row, or a JSON 404 for a missing id and for anything that is not an id (any path segment reaches here)."""
    if not (pk.isascii() and pk.isdigit() and len(pk) < 19):
        raise Http404
    return get_object_or_404(queryset, pk=int(pk))


class WorkflowDiffSerializer(serializers.Serializer):
    workflow = serializers.IntegerField()
    of = serializers.ChoiceField(
        choices=[("merge", "merge"), ("branch", "branch")],
        help_text="merge: what the merge commit changed on the target branch; branch: the workflow branch so far.",
    )
    base = serializers.CharField(help_text="Commit the diff starts from.")
    head = serializers.CharField(help_text="Commit the diff ends at.")
    files = serializers.ListField(child=serializers.CharField(), help_text="Paths the diff changes.")
    diff = serializers.CharField(help_text="Unified diff (git diff), whole files only when truncated.")
    truncated = serializers.BooleanField(help_text="The diff was longer than the limit; later files are left out.")


class VerificationRunSerializer(serializers.ModelSerializer):
    task = serializers.IntegerField(source="attempt.task_id", read_only=True, allow_null=True, default=None)
    attempt_number = serializers.IntegerField(source="attempt.number", read_only=True, allow_null=True, default=None)

    class Meta:
        model = VerificationRun
        fields = [
            "id",
            "workflow",
            "attempt",
            "task",
            "attempt_number",
            "kind",
            "command",
            "exit_code",
            "passed",
            "duration_ms",
            "output_tail",
            "created_at",
        ]
        read_only_fields = fields


class MergeQueueEntrySerializer(serializers.ModelSerializer):
    position = serializers.IntegerField(help_text="1 is merged next.")

    class Meta:
        model = Workflow
        fields = ["position", "id", "title", "status", "branch", "base_sha", "head_sha", "merge_queued_at"]
        read_only_fields = fields


class WorkflowDiffView(APIView):
    @extend_schema(responses={200: WorkflowDiffSerializer, **errors(401, 403, 404, 409)}, tags=["workflows"])
    def get(self, request: Request, pk: str) -> Response:
        """The unified diff of the workflow: its merge once delivered, else its branch against where it started.

        409 when the session has no repository, the workflow has no branch yet, or no copy of the repository
        is on this server.
        """
        workflow = _get(Workflow.objects.select_related("session"), pk)
        diff = workflow_diff(workflow=workflow)
        data = {
            "workflow": workflow.pk,
            "of": diff.of,
            "base": diff.base,
            "head": diff.head,
            "files": diff.files,
            "diff": diff.diff,
            "truncated": diff.truncated,
        }
        return Response(WorkflowDiffSerializer(data).data)


class WorkflowVerificationRunsView(ListAPIView):
    serializer_class = VerificationRunSerializer
    pagination_class = HivePagination

    @extend_schema(
        responses={200: VerificationRunSerializer(many=True), **errors(400, 401, 403, 404)}, tags=["workflows"]
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        """The verify commands the coordinator ran for this workflow's claims and merges, oldest first."""
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no workflow in the path
            return VerificationRun.objects.none()
        return verification_runs(workflow=_get(Workflow.objects.all(), self.kwargs["pk"]))


class SessionMergeQueueView(APIView):
    @extend_schema(responses={200: MergeQueueEntrySerializer(many=True), **errors(401, 403, 404)}, tags=["sessions"])
    def get(self, request: Request, pk: str) -> Response:
        """Workflows waiting to be merged onto the session's target branch, next first."""
        session = _get(Session.objects.all(), pk)
        entries = list(merge_queue(session=session))
        for position, workflow in enumerate(entries, start=1):
            workflow.position = position
        return Response(MergeQueueEntrySerializer(entries, many=True).data)
