"""Tenant administration over the API: the tenant's settings, memberships and API keys."""

import zoneinfo

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from jfintech.api.idempotency import idempotent
from jfintech.api.pagination import get_paginated_response
from jfintech.api.permissions import PlatformOnly, actor_for_request, request_api_key, tenant_may
from jfintech.api.tenancy import request_tenant
from jfintech.common.errors import ApplicationError
from jfintech.tenancy import selectors, services
from jfintech.tenancy.calendar import tenant_today
from jfintech.tenancy.models import ApiKey, Membership, Role, Tenant


class TenantOutput(serializers.ModelSerializer):
    today = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = [
            "slug",
            "name",
            "timezone",
            "weekend_days",
            "holidays",
            "window_months_back",
            "window_months_ahead",
            "today",
        ]

    def get_today(self, tenant) -> str:
        return tenant_today(tenant).isoformat()


class TenantUpdateInput(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200)
    # The IANA names the service accepts, as a choice list so the schema says which.
    timezone = serializers.ChoiceField(choices=sorted(zoneinfo.available_timezones()), required=False)
    weekend_days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7), required=False
    )
    holidays = serializers.ListField(child=serializers.DateField(), required=False)


class TenantApi(APIView):
    """The request's tenant: its name, time zone and business-day calendar."""

    permission_classes = [tenant_may("tenant")]

    @extend_schema(responses=TenantOutput)
    def get(self, request):
        return Response(TenantOutput(request_tenant(request)).data)

    @extend_schema(request=TenantUpdateInput, responses=TenantOutput)
    def patch(self, request):
        data = TenantUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        tenant = services.tenant_update(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            name=v.get("name"),
            timezone_name=v.get("timezone"),
            weekend_days=v.get("weekend_days"),
            holidays=v.get("holidays"),
        )
        return Response(TenantOutput(tenant).data)


class TenantCreateInput(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    timezone = serializers.CharField(max_length=64, default="UTC")
    weekend_days = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=7), required=False
    )
    holidays = serializers.ListField(child=serializers.DateField(), required=False)
    window_months_back = serializers.IntegerField(min_value=0, max_value=32767, required=False)
    window_months_ahead = serializers.IntegerField(min_value=0, max_value=32767, required=False)


class TenantListApi(APIView):
    """Every tenant, and a new one: a platform act (superusers; no ``X-Tenant``). The same as
    ``manage.py tenant create``."""

    permission_classes = [PlatformOnly]

    @extend_schema(responses=TenantOutput(many=True))
    def get(self, request):
        return get_paginated_response(
            queryset=Tenant.objects.order_by("slug"),
            serializer_class=TenantOutput,
            request=request,
            view=self,
        )

    @extend_schema(request=TenantCreateInput, responses={201: TenantOutput})
    @idempotent(tenant_scoped=False)  # a platform request names no tenant
    def post(self, request):
        data = TenantCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        tenant = services.tenant_create(
            actor=actor_for_request(request),
            slug=v["slug"],
            name=v["name"],
            timezone_name=v["timezone"],
            weekend_days=v.get("weekend_days"),
            holidays=v.get("holidays"),
            window_months_back=v.get("window_months_back"),
            window_months_ahead=v.get("window_months_ahead"),
        )
        return Response(TenantOutput(tenant).data, status=status.HTTP_201_CREATED)


class HolidayInput(serializers.Serializer):
    date = serializers.DateField()


class TenantHolidayApi(APIView):
    permission_classes = [tenant_may("tenant", "change")]

    @extend_schema(request=HolidayInput, responses={201: TenantOutput})
    @idempotent
    def post(self, request):
        data = HolidayInput(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = services.tenant_holiday_add(
            tenant=request_tenant(request), actor=actor_for_request(request), day=data.validated_data["date"]
        )
        return Response(TenantOutput(tenant).data, status=status.HTTP_201_CREATED)


class MembershipOutput(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "username", "role", "created_at"]


class MembershipCreateInput(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateInput(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipListApi(APIView):
    permission_classes = [tenant_may("membership")]

    @extend_schema(responses=MembershipOutput(many=True))
    def get(self, request):
        return get_paginated_response(
            queryset=selectors.membership_list(tenant=request_tenant(request)),
            serializer_class=MembershipOutput,
            request=request,
            view=self,
        )

    @extend_schema(request=MembershipCreateInput, responses={201: MembershipOutput})
    @idempotent
    def post(self, request):
        data = MembershipCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = (
            get_user_model().objects.filter(username=data.validated_data["username"], is_active=True).first()
        )
        if user is None:
            raise ApplicationError("No such user.", code="user_not_found", extra={"field": "username"})
        membership = services.membership_create(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            user=user,
            role=data.validated_data["role"],
        )
        return Response(MembershipOutput(membership).data, status=status.HTTP_201_CREATED)


class MembershipDetailApi(APIView):
    permission_classes = [tenant_may("membership")]

    def _membership(self, request, membership_id) -> Membership:
        return get_object_or_404(selectors.membership_list(tenant=request_tenant(request)), pk=membership_id)

    @extend_schema(responses=MembershipOutput)
    def get(self, request, membership_id: int):
        return Response(MembershipOutput(self._membership(request, membership_id)).data)

    @extend_schema(request=MembershipUpdateInput, responses=MembershipOutput)
    def patch(self, request, membership_id: int):
        membership = self._membership(request, membership_id)
        data = MembershipUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            membership=membership,
            role=data.validated_data["role"],
        )
        return Response(MembershipOutput(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, membership_id: int):
        membership = self._membership(request, membership_id)
        services.membership_delete(
            tenant=request_tenant(request), actor=actor_for_request(request), membership=membership
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "role", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.INTEGRATION)


class ApiKeyListApi(APIView):
    permission_classes = [tenant_may("api_key")]

    @extend_schema(responses=ApiKeyOutput(many=True))
    def get(self, request):
        return get_paginated_response(
            queryset=selectors.api_key_list(tenant=request_tenant(request)),
            serializer_class=ApiKeyOutput,
            request=request,
            view=self,
        )

    @extend_schema(
        request=ApiKeyCreateInput,
        responses={
            201: inline_serializer(
                "ApiKeyCreated", {"key": serializers.CharField(), "api_key": ApiKeyOutput()}
            )
        },
        description="Creates a key and returns it in plain text, once. Not idempotent by design: the "
        "response carries a secret, which is never stored.",
    )
    def post(self, request):
        data = ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        if request_api_key(request) is not None:
            raise ApplicationError("API keys cannot create API keys.", code="forbidden", status=403)
        created = services.api_key_create(
            tenant=request_tenant(request),
            actor=actor_for_request(request),
            name=data.validated_data["name"],
            role=data.validated_data["role"],
            created_by=request.user,
        )
        return Response(
            {"key": created.plaintext, "api_key": ApiKeyOutput(created.key).data},
            status=status.HTTP_201_CREATED,
        )


class ApiKeyDetailApi(APIView):
    permission_classes = [tenant_may("api_key")]

    @extend_schema(responses=ApiKeyOutput)
    def get(self, request, key_id: int):
        key = get_object_or_404(selectors.api_key_list(tenant=request_tenant(request)), pk=key_id)
        return Response(ApiKeyOutput(key).data)


class ApiKeyRevokeApi(APIView):
    permission_classes = [tenant_may("api_key", "revoke")]

    @extend_schema(request=None, responses=ApiKeyOutput)
    def post(self, request, key_id: int):
        tenant = request_tenant(request)
        key = get_object_or_404(selectors.api_key_list(tenant=tenant), pk=key_id)
        key = services.api_key_revoke(tenant=tenant, actor=actor_for_request(request), key=key)
        return Response(ApiKeyOutput(key).data)
