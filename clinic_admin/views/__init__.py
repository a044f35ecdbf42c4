"""Clinic administration and audit pages (DESIGN.md "Who may do what": clinic admins, own clinic).

Every page looks the clinic up through the user's scope (another clinic answers 404) and checks
the role table (``clinics.manage_clinic`` or ``clinics.audit``: 403 for other roles).
"""
