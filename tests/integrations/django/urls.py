from django.urls import include, path

from . import views

api = [
    path("chat", views.chat),
    path("chat/limited", views.limited_chat),
    path("chat/unguarded", views.unguarded_chat),
    path("long", views.long_answer),
    path("achat", views.achat),
    path("achat/misuse", views.async_view_using_sync_client),
    path("report", views.Report.as_view()),
    path("areport", views.AsyncReport.as_view()),
    path("dispatch", views.UserDispatch.as_view()),
    path("apost", views.AsyncUserPost.as_view()),
]

urlpatterns = [
    path("whoami", views.whoami),
    path("client-types", views.client_types),
    path("aclient-types", views.aclient_types),
    path("test/close-pools", views.close_pools),
    path("admin", views.admin_page),
    path("admin/cbv", views.AdminOnlyGet.as_view()),
    path("api/", include(api)),
]
