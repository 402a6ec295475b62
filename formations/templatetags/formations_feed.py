"""`{% load formations_feed %}{% learner_feed_section %}`: the card of the learner's private
calendar address, for any settings page, without that page's view knowing about feeds."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from formations.feeds import feed_for

register = template.Library()


@register.inclusion_tag("formations/_feed_settings.html", takes_context=True)
def learner_feed_section(context: template.Context) -> dict[str, Any]:
    request = context["request"]
    if not request.user.is_authenticated:
        return {}
    feed = feed_for(user=request.user)
    url = request.build_absolute_uri(reverse("formations:feed", args=[feed.token]))
    # webcal:// asks the device to open its calendar program on the same address.
    return {"feed_url": url, "webcal_url": "webcal://" + url.split("://", 1)[1]}
