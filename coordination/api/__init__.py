"""The JSON API: serializers, filters and thin views over coordination services and selectors."""
