"""Sign-in and sign-out for the console, under the plain names "login" and "logout" (LOGIN_URL)."""

from django.contrib.auth import views as auth_views
from django.urls import path


class SignOutView(auth_views.LogoutView):
    """Django's sign-out, telling the browser to drop what it kept of the console (caches, stored snapshot)."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        response["Clear-Site-Data"] = '"cache", "storage"'
        return response


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", SignOutView.as_view(), name="logout"),
]
