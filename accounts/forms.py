from __future__ import annotations

from django import forms

from accounts.models import ApiToken, Profile


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["time_zone", "language"]


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name"]
