from django.urls import path

from jfintech.tenancy import apis

urlpatterns = [
    path("tenant/", apis.TenantApi.as_view(), name="tenant"),
    path("tenants/", apis.TenantListApi.as_view(), name="tenant-list"),
    path("tenant/holidays/", apis.TenantHolidayApi.as_view(), name="tenant-holidays"),
    path("memberships/", apis.MembershipListApi.as_view(), name="membership-list"),
    path("memberships/<int:membership_id>/", apis.MembershipDetailApi.as_view(), name="membership-detail"),
    path("api-keys/", apis.ApiKeyListApi.as_view(), name="api-key-list"),
    path("api-keys/<int:key_id>/", apis.ApiKeyDetailApi.as_view(), name="api-key-detail"),
    path("api-keys/<int:key_id>/revoke/", apis.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
]
