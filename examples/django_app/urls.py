from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("login", views.login),
    path("logout", views.logout),
    path("api/me", views.me),
    path("api/chat", views.chat),
    path("api/chat/stream", views.chat_stream),
    path("api/long", views.long_answer),
    path("admin", views.AdminPage.as_view()),
]
