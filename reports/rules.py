"""Who may read the clinic report (DESIGN.md's role table: physicians and the clinic's admins;
superusers everywhere). Nurses may not: the report judges their work as a whole."""

import rules

from clinics.rules import is_clinic_admin, is_physician

rules.add_perm("reports.view_report", is_physician | is_clinic_admin)
