"""One mailbox, four requests at a time, batches included: Graph runs up to 4 requests of one
`$batch` against Outlook at once, so several batches in flight for one mailbox bring 429
MailboxConcurrency on inner requests (PROVIDERS.md, "`$batch` and the mailbox")."""

from __future__ import annotations

import pytest

from calendars.models import FormationExport
from calendars.sync.exporting import integration_export
from tests.calendars.connect_helpers import connect

pytestmark = pytest.mark.usefixtures("forget_exported_events")


def test_exporting_many_formations_never_exceeds_the_mailboxs_four_requests(
    sandbox_settings, learner, make_formation
):
    integration = connect(sandbox_settings, learner, "outlook")
    for _ in range(100):  # 5 batches of 20
        make_formation(learners=(learner,))
    sandbox_settings.reset_counters()

    result = integration_export(integration=integration)

    assert sandbox_settings.count("graph.throttled.mailbox_concurrency") == 0
    assert (result.created, result.failed) == (100, 0)
    assert result.requests == 5
    assert FormationExport.objects.filter(integration=integration).count() == 100
