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
    path("awhoami", views.awhoami),
    path("awhoami/lazy", views.async_view_reading_the_lazy_principal),
    path("is-none", views.is_none),
    path("page", views.unguarded_page),
    path("broken", views.broken),
    path("apage", views.aunguarded_page),
    path("twice", views.twice_guarded),
    path("client-types", views.client_types),
    path("aclient-types", views.aclient_types),
    path("test/close-pools", views.close_pools),
    path("admin", views.admin_page),
    path("admin/cbv", views.AdminOnlyGet.as_view()),
    path("cbv/mixin-first", views.MixinFirst.as_view()),
    path("cbv/view-first", views.ViewFirst.as_view()),
    path("cbv/async-mixin-first", views.AsyncMixinFirst.as_view()),
    path("cbv/async-view-first", views.AsyncViewFirst.as_view()),
    path("cbv/own-dispatch", views.ViewFirstWithItsOwnDispatch.as_view()),
    path("cbv/power-subclass", views.PowerSubclassOfViewFirst.as_view()),
    path("cbv/login-then-role", views.LoginThenRole.as_view()),
    path("cbv/async-dispatch", views.AsyncDispatch.as_view()),
    path("api/", include(api)),
]
