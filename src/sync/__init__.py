"""The sync worker: walks the folder-sync sources a tenant's admins
registered and brings their documents in line with the files, through the
same intake as uploads (docs/sources.md)."""
