"""Profiles for boards and rooms, and the doctor that checks a device."""
