from django.urls import path

from exceptions import apis

urlpatterns = [
    path("cases/", apis.CaseListApi.as_view(), name="case-list"),
    path("cases/<int:case_id>/", apis.CaseDetailApi.as_view(), name="case-detail"),
    path("cases/<int:case_id>/assign/", apis.CaseAssignApi.as_view(), name="case-assign"),
    path("cases/<int:case_id>/transition/", apis.CaseTransitionApi.as_view(), name="case-transition"),
    path("cases/<int:case_id>/priority/", apis.CasePriorityApi.as_view(), name="case-priority"),
    path("cases/<int:case_id>/comments/", apis.CaseCommentApi.as_view(), name="case-comments"),
    path(
        "cases/<int:case_id>/resolution-requests/",
        apis.CaseResolutionRequestApi.as_view(),
        name="case-resolution-request",
    ),
    path("approvals/", apis.ApprovalListApi.as_view(), name="approval-list"),
    path("approvals/<int:approval_id>/approve/", apis.ApprovalApproveApi.as_view(), name="approval-approve"),
    path("approvals/<int:approval_id>/reject/", apis.ApprovalRejectApi.as_view(), name="approval-reject"),
]
