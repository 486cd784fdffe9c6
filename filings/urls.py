from django.urls import path

from filings import apis

urlpatterns = [
    path("", apis.FilingListApi.as_view(), name="filing-list"),
    path("<int:filing_id>/", apis.FilingDetailApi.as_view(), name="filing-detail"),
    path("<int:filing_id>/validate/", apis.FilingValidateApi.as_view(), name="filing-validate"),
    path(
        "<int:filing_id>/request-approval/",
        apis.FilingRequestApprovalApi.as_view(),
        name="filing-request-approval",
    ),
    path("<int:filing_id>/approve/", apis.FilingApproveApi.as_view(), name="filing-approve"),
    path("<int:filing_id>/send-back/", apis.FilingSendBackApi.as_view(), name="filing-send-back"),
    path("<int:filing_id>/amend/", apis.FilingAmendApi.as_view(), name="filing-amend"),
    path("ctr/prepare/", apis.CtrPrepareApi.as_view(), name="filing-ctr-prepare"),
    path("packages/", apis.PackageListApi.as_view(), name="filing-package-list"),
    path("packages/<int:package_id>/", apis.PackageDetailApi.as_view(), name="filing-package-detail"),
    path("packages/<int:package_id>/xml/", apis.PackageXmlApi.as_view(), name="filing-package-xml"),
    path("packages/<int:package_id>/submit/", apis.PackageSubmitApi.as_view(), name="filing-package-submit"),
    path(
        "packages/<int:package_id>/acknowledgements/",
        apis.PackageAcknowledgementApi.as_view(),
        name="filing-package-acknowledgement",
    ),
    path("rules/", apis.RuleCatalogApi.as_view(), name="filing-rules"),
    path("sar/refer/", apis.SarReferApi.as_view(), name="filing-sar-refer"),
    path("<int:filing_id>/sar/", apis.SarEditApi.as_view(), name="filing-sar-edit"),
    path("<int:filing_id>/history/", apis.FilingHistoryApi.as_view(), name="filing-history"),
]
