; Inno Setup script for DocMind on Windows (Inno Setup 6): installs the app folder built by
; packaging/build.sh (dist\DocMind-app), with Start menu and optional desktop shortcuts.
; Uninstalling keeps the user's documents index and chats unless they choose to delete them.
;   iscc /DAppVersion=0.1.0 installers\windows\DocMind.iss      -> dist\DocMind-Setup-0.1.0.exe
; See installers/README.md for signing.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppName "DocMind"
#define AppFolder "..\..\dist\DocMind-app"

[Setup]
AppId={{6C1F3E52-7A0B-4F7E-9B0D-2D5C8A1E4F10}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=DocMind
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\dist
OutputBaseFilename=DocMind-Setup-{#AppVersion}
SetupIconFile=..\..\packaging\icons\docmind.ico
UninstallDisplayIcon={app}\DocMind.exe
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
; Set by the signing pipeline: iscc /Ssigntool="signtool sign /fd sha256 /tr http://timestamp.digicert.com /td sha256 /a $f"
#ifdef SignTool
SignTool=signtool
#endif

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[Files]
Source: "{#AppFolder}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\DocMind.exe"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\DocMind.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\DocMind.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
// The data dir is platformdirs.user_data_dir("DocMind") = %LOCALAPPDATA%\DocMind (documents index,
// chats, downloaded models, logs). Keep it unless the user explicitly asks to delete it.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    DataDir := ExpandConstant('{localappdata}\{#AppName}');
    if DirExists(DataDir) and not UninstallSilent then
      if MsgBox('Also delete your DocMind data (document index, chats and downloaded models) in ' + DataDir + '?' + #13#10 +
                'Choose No to keep it for a later install.', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
