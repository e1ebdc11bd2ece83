/**
 * The dashboard's icon, served at /favicon.svg and /favicon.ico: three rising bars (rollups), drawn
 * here so nothing is fetched.
 */
export const favicon = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="6" fill="#161b22"/>
<rect x="6" y="17" width="5" height="9" rx="1" fill="#2f9e44"/>
<rect x="13.5" y="11" width="5" height="15" rx="1" fill="#1f6feb"/>
<rect x="21" y="6" width="5" height="20" rx="1" fill="#e8590c"/>
</svg>
`;
