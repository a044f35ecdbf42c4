"""Password sign-in without Django's global model permissions.

Who may do what is per clinic (memberships and roles, ``clinics/rules.py`` through the ``rules``
backend); active superusers have every permission without any backend. Django's user and group
permissions are not used, yet ``ModelBackend`` looks them up (two queries) the first time a
request asks ``perms.…`` — on every page, for the navigation. This backend keeps its password
check and answers no permission.
"""

from django.contrib.auth.backends import ModelBackend


class PasswordBackend(ModelBackend):
    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def get_all_permissions(self, user_obj, obj=None):
        return set()
