"""Admin actions that ask for input first (a reason, an assignee) on one intermediate page."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse


def intermediate_form_action(title: str, make_form):
    """Decorator for an admin action ``fn(modeladmin, request, queryset, cleaned_data)`` that first
    shows ``make_form(request, data)`` for the selected rows; the action runs once the form is valid.
    """

    def decorate(fn):
        def action(modeladmin, request, queryset):
            applying = "apply" in request.POST
            form = make_form(request, request.POST if applying else None)
            if applying and form.is_valid():
                fn(modeladmin, request, queryset, form.cleaned_data)
                return None
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": title,
                "form": form,
                "queryset": queryset[:50],
                "count": queryset.count(),
                "action": fn.__name__,
                "opts": modeladmin.model._meta,
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            }
            return TemplateResponse(request, "admin/action_form.html", context)

        action.__name__ = fn.__name__
        action.short_description = title
        return action

    return decorate
