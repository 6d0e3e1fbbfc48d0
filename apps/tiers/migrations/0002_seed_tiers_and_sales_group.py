"""Seed the five tiers of the product ladder and the `sales` group with its admin permissions."""

from decimal import Decimal

from django.contrib.auth.management import create_permissions
from django.db import migrations

LADDER = ["snapshots", "json_stream"], ["delta_history"], ["microstructure", "batch_orders"], ["binary_stream"], [
    "co_location"
]
# slug, name, refill/s, burst, /min, /hour, /day, SLA p95 ms, USD/month, WS conns, subs/conn, depth, history, batch
TIERS = [
    ("free", "Free", "2", 5, 60, 1_000, 10_000, None, "0", 1, 5, 20, 0, None),
    ("basic", "Basic", "10", 20, 300, 10_000, 100_000, None, "99", 2, 10, 100, 100, None),
    ("professional", "Professional", "50", 100, 2_000, 50_000, 500_000, 100, "499", 5, 25, 400, 1_000, 20),
    ("enterprise", "Enterprise", "200", 500, 10_000, 500_000, 5_000_000, 50, "1999", 20, 100, None, 10_000, 50),
    ("hft", "HFT", "1000", 5_000, 50_000, 2_000_000, 20_000_000, 10, "4999", 50, 250, None, 100_000, 100),
]
SALES_PERMISSIONS = [
    "view_tier",
    "view_customer",
    "change_customer",
    "view_historicalcustomer",
    "view_usagerecord",
]


def seed(apps, schema_editor):
    Tier = apps.get_model("tiers", "Tier")
    features: list[str] = []
    for row, added in zip(TIERS, LADDER, strict=True):
        features = [*features, *added]
        slug, name, rate, burst, per_min, per_hour, per_day, sla, price, ws, subs, depth, history, batch = row
        Tier.objects.update_or_create(
            slug=slug,
            defaults=dict(
                name=name,
                refill_per_second=Decimal(rate),
                burst=burst,
                quota_per_minute=per_min,
                quota_per_hour=per_hour,
                quota_per_day=per_day,
                latency_sla_p95_ms=sla,
                monthly_price=Decimal(price),
                max_ws_connections=ws,
                max_subscriptions_per_connection=subs,
                max_book_depth=depth,
                delta_history_length=history,
                max_batch_size=batch,
                features=features,
            ),
        )
    # Permissions are normally created after all migrations; sales needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    sales, _ = Group.objects.get_or_create(name="sales")
    sales.permissions.set(Permission.objects.filter(content_type__app_label="tiers", codename__in=SALES_PERMISSIONS))


def unseed(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="sales").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tiers", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
