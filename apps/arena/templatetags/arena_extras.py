"""Template tags of the arena app for other apps' pages: `{% arena_lineage dataset_version_id %}` renders the
"Preference data" row of a model version's lineage (templates/registry/detail.html) when its dataset version
is an arena's export, and nothing otherwise."""
from django import template

register = template.Library()


@register.inclusion_tag("arena/_lineage.html")
def arena_lineage(dataset_version_id):
    from apps.arena.selectors import arena_for_dataset_version

    return {"lineage_arena": arena_for_dataset_version(dataset_version_id if isinstance(dataset_version_id, int)
                                                       else None)}
