"""{% command_examples as examples %}: the phrasings the command bar shows before anything is typed."""
from django import template

from apps.commands.parser import EXAMPLES

register = template.Library()


@register.simple_tag
def command_examples():
    return EXAMPLES
