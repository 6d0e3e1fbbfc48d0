"""Drop every process's key cache after a tier, customer or key changes (after the commit)."""

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.tiers.models import APIKey, Customer, Tier
from apps.tiers.services.auth import schedule_generation_bump


@receiver([post_save, post_delete], sender=Tier)
@receiver([post_save, post_delete], sender=Customer)
@receiver([post_save, post_delete], sender=APIKey)
def invalidate_key_cache(sender: Any, **kwargs: Any) -> None:
    schedule_generation_bump()
