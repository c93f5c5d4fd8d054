"""incident: carry a company through a personal-information security incident."""

__version__ = "0.1.0"
