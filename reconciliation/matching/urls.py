from django.urls import path

from reconciliation.matching import apis

urlpatterns = [
    path("matches/", apis.MatchListApi.as_view(), name="recon-match-list"),
    path("matches/<int:match_id>/", apis.MatchDetailApi.as_view(), name="recon-match-detail"),
    path("matches/<int:match_id>/accept/", apis.SuggestionAcceptApi.as_view(), name="recon-match-accept"),
    path("matches/<int:match_id>/reject/", apis.SuggestionRejectApi.as_view(), name="recon-match-reject"),
    path("matches/<int:match_id>/unmatch/", apis.MatchUnmatchApi.as_view(), name="recon-match-unmatch"),
    path(
        "definitions/<int:definition_id>/manual-matches/",
        apis.ManualMatchApi.as_view(),
        name="recon-manual-match",
    ),
    path(
        "definitions/<int:definition_id>/similar-records/",
        apis.SimilarRecordsApi.as_view(),
        name="recon-similar-records",
    ),
    path("definitions/<int:definition_id>/dry-runs/", apis.DryRunApi.as_view(), name="recon-dry-run"),
    path("runs/<int:run_id>/impact/", apis.ImpactApi.as_view(), name="recon-run-impact"),
    path("rule-versions/", apis.RuleVersionListApi.as_view(), name="recon-rule-version-list"),
    path(
        "rule-versions/<int:version_id>/approve/",
        apis.RuleVersionApproveApi.as_view(),
        name="recon-rule-version-approve",
    ),
    path(
        "rule-versions/<int:version_id>/reject/",
        apis.RuleVersionRejectApi.as_view(),
        name="recon-rule-version-reject",
    ),
    path("simulations/", apis.SimulationListApi.as_view(), name="recon-simulation-list"),
    path("simulations/<int:report_id>/", apis.SimulationDetailApi.as_view(), name="recon-simulation-detail"),
]
