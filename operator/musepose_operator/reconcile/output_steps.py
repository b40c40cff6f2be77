"""An Animation's output, from its download link to its cleanup.

``Outputs.link`` gives the status's output facts (sealed for reclaim, with a presigned
link for an s3:// video and its poster). Deletion waits for cleanup only under ``outputReclaimPolicy:
Delete`` (the finalizer ``reconcile.decide`` keeps); ``finalize`` does it: what ``reclaim``
allows (only what a successful run wrote, inside the namespace's prefixes, unchanged
since), then a leftover resume checkpoint, then the finalizer goes.
"""

from __future__ import annotations

import asyncio
import logging
import os

from musepose_operator.api import Phase
from musepose_operator.base import labels as L
from musepose_operator.base.sealing import SealKeys
from musepose_operator.base.tenancy import within, write_prefixes
from musepose_operator.base.timestamps import now, parse_time
from musepose_operator.base.types import Obj
from musepose_operator.cluster.kube import Kube
from musepose_operator.cluster.watch_cache import key
from musepose_operator.outputs import reclaim
from musepose_operator.outputs.object_store import ObjectStore
from musepose_operator.planning.job import output_location, resume_checkpoint_location
from musepose_operator.reconcile.status_writer import post_event
from musepose_operator.settings import Settings
from musepose_operator.status.mapping import Observation

log = logging.getLogger("musepose_operator")

# The presigned links in status.output: (location, its digest, the link, when it expires).
LINKS = (("uri", "sha256", "presignedUrl", "presignedUrlExpiresAt"),
         ("posterUri", "posterSha256", "posterPresignedUrl", "posterPresignedUrlExpiresAt"))


class Outputs:
    def __init__(self, kube: Kube, settings: Settings,
                 keys: SealKeys | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self._objects: ObjectStore | None = None
        if keys is None:
            keys, made_up = reclaim.reclaim_keys(os.environ)
            if made_up:
                log.warning("no %s: sealing outputs with a key made up for this process; "
                            "outputReclaimPolicy Delete will leave outputs sealed before a "
                            "restart in place", reclaim.KEYS_ENV)
        self.keys = keys

    def objects(self) -> ObjectStore:
        if self._objects is None:
            self._objects = ObjectStore(self.settings.s3)
        return self._objects

    # -- the link --------------------------------------------------------------------------

    def link(self, body: Obj, seen: Observation) -> Obj | None:
        """``status.output`` for ``seen``: where the video goes, or the run's facts about
        it with a download link (kept while the video is the same one)."""
        spec = body.get("spec") or {}
        meta = body["metadata"]
        uri = output_location(self.settings, meta["namespace"], meta["name"], spec.get("output"))
        if seen.output is None:
            return {"uri": uri} if seen.phase is not Phase.FAILED else None
        output = dict(seen.output)
        # Sealed here, from the runner's result (seen.output comes from its termination
        # message, never from a status), so deletion can tell it from a rewritten status.
        seal = reclaim.seal_output(output, meta, self.keys)
        if seal:
            output[reclaim.SEAL_FIELD] = seal
        previous = (body.get("status") or {}).get("output") or {}
        for link in LINKS:
            self._presign(link, output, previous)
        return output

    def _presign(self, link: tuple[str, str, str, str], output: Obj, previous: Obj) -> None:
        """One download link (``LINKS``), kept while it points at the same file."""
        uri_key, sha_key, url_key, until_key = link
        expiry = self.settings.presign_expiry_seconds
        uri = str(output.get(uri_key) or "")
        if not expiry or not uri.startswith("s3://"):
            return
        if previous.get(url_key) and previous.get(sha_key) == output.get(sha_key):
            output[url_key], output[until_key] = previous[url_key], previous.get(until_key)
            return
        try:
            output[url_key], output[until_key] = self.objects().presign(uri, expiry)
        except Exception as err:  # noqa: BLE001 - a link is a convenience
            log.warning("could not presign %s: %s", uri, err)

    # -- deletion --------------------------------------------------------------------------

    async def finalize(self, body: Obj) -> None:
        """Clean up after a deleted Animation that holds the finalizer, then let it go."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if L.OUTPUT_FINALIZER not in finalizers:
            return
        done = await self._reclaim(body)
        waited = (now() - parse_time(meta["deletionTimestamp"])).total_seconds()
        if done.retry and waited < self.settings.output_cleanup_give_up_seconds:
            log.warning("output cleanup of %s will be retried: %s", key(body), done.retry)
            return
        await self._drop_resume_checkpoint(body)
        # Named after what they say: a second pass over the same deletion (a watch event
        # that arrived before the finalizer went) finds them made instead of doubling them.
        for problem in done.left + done.retry:
            await post_event(self.kube, body, "Warning", "OutputNotDeleted", problem,
                             "deletion")
        if done.deleted:
            await post_event(self.kube, body, "Normal", "OutputDeleted",
                             f"deleted {' and '.join(done.deleted)}", "deletion")
        finalizers.remove(L.OUTPUT_FINALIZER)
        await self.kube.patch_animation(meta["namespace"], meta["name"],
                                        {"metadata": {"finalizers": finalizers}})

    async def _reclaim(self, body: Obj) -> reclaim.ReclaimOutcome:
        """Only what a successful run wrote (as sealed from its result), inside the
        namespace's prefixes, unchanged since (``reclaim`` decides; this carries it out)."""
        meta = body["metadata"]
        plan = reclaim.plan_reclaim(body.get("status") or {}, meta, self.settings, self.keys)
        return await asyncio.to_thread(
            reclaim.execute, plan, lambda uri, sha: self.objects().delete_if_unchanged(uri, sha))

    async def _drop_resume_checkpoint(self, body: Obj) -> None:
        """A run that never finished may have left a resume checkpoint beside its output."""
        meta = body["metadata"]
        output = output_location(self.settings, meta["namespace"], meta["name"],
                                 (body.get("spec") or {}).get("output"))
        location = resume_checkpoint_location(output, meta["uid"])
        if not self.settings.checkpoints.enabled or not location.startswith("s3://"):
            return
        if not within(location, write_prefixes(self.settings, meta["namespace"])):
            return  # never outside the namespace's own prefixes, whatever the spec says
        try:
            await asyncio.to_thread(self.objects().delete, location)
        except Exception as err:  # noqa: BLE001 - a leftover checkpoint costs only space
            log.warning("resume checkpoint %s of %s not deleted: %s", location, key(body), err)
