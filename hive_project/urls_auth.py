"""Sign-in and sign-out for the console, under the plain names "login" and "logout" (LOGIN_URL)."""

from django.contrib.auth import views as auth_views
from django.urls import path

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
